// Reads one element past the end of a heap block: AddressSanitizer must stop this program (tests/cpp/CMakeLists.txt
// expects it to fail). Built only with DTD_SANITIZE.
#include <cstdio>
#include <vector>

int main(int argc, char**) {
  std::vector<int> v(static_cast<size_t>(argc) + 3, 1);
  volatile int* p = v.data();
  const int past_the_end = p[v.size()];
  std::printf("read %d past the end: the sanitizer is not active\n", past_the_end);
  return 0;
}
