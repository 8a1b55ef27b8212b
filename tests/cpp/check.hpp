// The one assertion the C++ tests use: records a failure with its message and goes on.
#pragma once

#include <cstdio>
#include <string>

namespace dtd_test {

inline int failures = 0;

inline void check(bool ok, const std::string& what) {
  if (!ok) {
    ++failures;
    std::printf("FAIL: %s\n", what.c_str());
  }
}

}  // namespace dtd_test
