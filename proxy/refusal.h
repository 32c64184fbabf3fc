// A statement pgmoat refuses, as the client's ErrorResponse will say it.
#pragma once

#include <string>

namespace pgmoat::proxy {

struct Refusal {
  std::string sqlstate;
  std::string message;
  std::string detail;
  std::string hint;
};

}  // namespace pgmoat::proxy
