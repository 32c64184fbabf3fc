// SHA-256 through one EVP_MD fetched once per process and one EVP_MD_CTX per thread. OpenSSL
// 3's one-shot SHA256() and EVP_Digest(..., EVP_sha256(), ...) look the algorithm up in the
// provider store on every call, which costs as much as hashing a few hundred bytes.
#pragma once

#include <array>
#include <string_view>

namespace pgmoat {

using Sha256 = std::array<unsigned char, 32>;

// Throws std::runtime_error if OpenSSL cannot provide SHA-256 (a broken installation).
Sha256 sha256(std::string_view bytes);

}  // namespace pgmoat
