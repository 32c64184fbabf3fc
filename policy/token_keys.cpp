// Ed25519 keys (OpenSSL 3 EVP), signing, and the trusted approver keys from the config.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>

#include "common/hex.h"
#include "common/sha256.h"
#include "common/toml_reader.h"
#include "policy/token.h"
#include "policy/token_internal.h"

namespace pgmoat::policy {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

KeyPtr own(EVP_PKEY* key) {
  return KeyPtr(key, EVP_PKEY_free);
}

// The most recent OpenSSL error, for messages; clears the queue.
std::string openssl_error() {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  std::array<char, 256> buf{};
  ERR_error_string_n(code, buf.data(), buf.size());
  return buf.data();
}

// Encrypted PEM keys are refused instead of prompting on a terminal.
int no_password(char*, int, int, void*) {
  return -1;
}

KeyPtr load_key(const std::string& path, bool private_key) {
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) {
    ERR_clear_error();
    throw std::runtime_error("cannot open '" + path + "': " + std::strerror(errno));
  }
  EVP_PKEY* raw = private_key ? PEM_read_bio_PrivateKey(bio.get(), nullptr, no_password, nullptr)
                              : PEM_read_bio_PUBKEY(bio.get(), nullptr, no_password, nullptr);
  if (raw == nullptr) {
    throw std::runtime_error("'" + path + "' is not a PEM " + (private_key ? "private" : "public") +
                             " key (" + openssl_error() + ")");
  }
  KeyPtr key = own(raw);
  if (EVP_PKEY_get_id(raw) != EVP_PKEY_ED25519) {
    throw std::runtime_error("'" + path + "' is not an Ed25519 key");
  }
  return key;
}

void write_file_exclusive(const std::string& path, const std::string& data, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    int err = errno;
    if (err == EEXIST)
      throw std::runtime_error("'" + path + "' already exists; not overwriting it");
    throw std::runtime_error("cannot create '" + path + "': " + std::strerror(err));
  }
  // The umask may have removed bits, never added any; set the exact mode anyway.
  bool ok = ::fchmod(fd, mode) == 0;
  std::size_t done = 0;
  while (ok && done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      ok = false;
    else
      done += static_cast<std::size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  int err = errno;
  ok = (::close(fd) == 0) && ok;
  if (!ok) {
    ::unlink(path.c_str());
    throw std::runtime_error("cannot write '" + path + "': " + std::strerror(err));
  }
}

std::string bio_contents(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  if (len <= 0 || data == nullptr) return {};
  return std::string(data, static_cast<std::size_t>(len));
}

}  // namespace

bool valid_approver_name(std::string_view name) {
  if (name.empty() || name.size() > 64 || name.front() == '.') return false;
  for (char c : name) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.' || c == '@';
    if (!ok) return false;
  }
  return true;
}

KeyPtr generate_ed25519_key() {
  EVP_PKEY* raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (raw == nullptr)
    throw std::runtime_error("cannot generate an Ed25519 key: " + openssl_error());
  return own(raw);
}

KeyPtr load_private_key(const std::string& path) {
  return load_key(path, true);
}
KeyPtr load_public_key(const std::string& path) {
  return load_key(path, false);
}

void write_private_key(const EVP_PKEY& key, const std::string& path) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), &key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    throw std::runtime_error("cannot encode private key: " + openssl_error());
  }
  write_file_exclusive(path, bio_contents(bio.get()), 0600);
}

void write_public_key(const EVP_PKEY& key, const std::string& path) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), &key) != 1) {
    throw std::runtime_error("cannot encode public key: " + openssl_error());
  }
  write_file_exclusive(path, bio_contents(bio.get()), 0644);
}

std::string key_id(const EVP_PKEY& key) {
  std::array<unsigned char, 32> pub{};
  std::size_t len = pub.size();
  if (EVP_PKEY_get_raw_public_key(&key, pub.data(), &len) != 1) {
    throw std::runtime_error("cannot read raw public key: " + openssl_error());
  }
  const Sha256 digest = sha256(std::string_view(reinterpret_cast<const char*>(pub.data()), len));
  return to_hex(std::span(digest).first(8));
}

namespace detail {

std::string sign_payload(std::string_view payload_json, const EVP_PKEY& private_key) {
  if (EVP_PKEY_get_id(&private_key) != EVP_PKEY_ED25519) {
    throw std::invalid_argument("token signing key is not Ed25519");
  }
  std::string signing_input = std::string(kTokenPrefix) + "." + base64url_encode(payload_json);
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  std::array<unsigned char, 64> sig{};
  std::size_t sig_len = sig.size();
  // EVP_DigestSignInit takes a non-const key but does not change it.
  if (!ctx ||
      EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr,
                         const_cast<EVP_PKEY*>(&private_key)) != 1 ||
      EVP_DigestSign(ctx.get(), sig.data(), &sig_len,
                     reinterpret_cast<const unsigned char*>(signing_input.data()),
                     signing_input.size()) != 1) {
    throw std::runtime_error("cannot sign token: " + openssl_error());
  }
  std::string_view sig_bytes(reinterpret_cast<const char*>(sig.data()), sig_len);
  return signing_input + "." + base64url_encode(sig_bytes);
}

}  // namespace detail

std::string sign_token(TokenClaims claims, const EVP_PKEY& private_key) {
  if (EVP_PKEY_get_id(&private_key) != EVP_PKEY_ED25519) {
    throw std::invalid_argument("token signing key is not Ed25519");
  }
  claims.key_id = key_id(private_key);
  return detail::sign_payload(encode_payload(claims), private_key);
}

void TrustedKeys::add(std::string name, KeyPtr key, std::string source) {
  if (!key || EVP_PKEY_get_id(key.get()) != EVP_PKEY_ED25519) {
    throw std::invalid_argument("approver '" + name + "': key is not Ed25519");
  }
  std::string id = key_id(*key);
  if (const Approver* other = find_by_key_id(id); other != nullptr && other->name != name) {
    throw std::invalid_argument("the same public key is already trusted for approver '" +
                                other->name + "'");
  }
  approvers_.push_back(Approver{std::move(name), std::move(key), std::move(id), std::move(source)});
}

const Approver* TrustedKeys::find_by_key_id(std::string_view id) const {
  for (const auto& a : approvers_) {
    if (a.key_id == id) return &a;
  }
  return nullptr;
}

TrustedKeys load_approvers(cfg::Table& root) {
  TrustedKeys keys;
  std::filesystem::path config_dir = std::filesystem::path(root.file()).parent_path();
  for (cfg::Table& entry : root.get_table_array("approvers")) {
    const std::string& where = entry.path();  // "approvers[0]"
    auto name = entry.get_string("name");
    if (!name) entry.fail("", where + " needs a 'name'");
    if (!valid_approver_name(*name)) {
      entry.fail("name", where + ": approver name '" + *name +
                             "' must be 1-64 characters of A-Z a-z 0-9 _ - . @");
    }
    auto key_path = entry.get_string("public_key");
    if (!key_path) entry.fail("", where + " ('" + *name + "') needs a 'public_key' file");
    entry.finish();
    std::filesystem::path p(*key_path);
    if (p.is_relative()) p = config_dir / p;
    KeyPtr key;
    try {
      key = load_public_key(p.string());
    } catch (const std::exception& e) {
      entry.fail("public_key", where + " ('" + *name + "'): " + e.what());
    }
    try {
      keys.add(*name, std::move(key), entry.where(""));
    } catch (const std::invalid_argument& e) {
      entry.fail("public_key", where + " ('" + *name + "'): " + e.what());
    }
  }
  return keys;
}

}  // namespace pgmoat::policy
