// An environment switch for comparisons and tests, read per call: 0 or 1 when `name` is set to a
// number, -1 when it is unset.
#pragma once

#include <cstdlib>

namespace fusedrnn {
namespace cpu {

inline int forced_choice(const char* name) {
  const char* env = std::getenv(name);
  return env ? std::atoi(env) : -1;
}

}  // namespace cpu
}  // namespace fusedrnn
