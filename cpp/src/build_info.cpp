// dtd::build_info(): what the compiler saw when it built this core (CMake passes the DTD_BUILD_* definitions).
#include "dtd/build_info.hpp"

#include <Eigen/Core>

#include "gemm.hpp"

#ifndef DTD_BUILD_VARIANT
#define DTD_BUILD_VARIANT "unknown"
#endif
#ifndef DTD_BUILD_ARCH_OPTIONS
#define DTD_BUILD_ARCH_OPTIONS ""
#endif
#ifndef DTD_BUILD_TYPE
#define DTD_BUILD_TYPE ""
#endif

#define DTD_STR2(x) #x
#define DTD_STR(x) DTD_STR2(x)

namespace dtd {

namespace {

std::string compiler() {
#if defined(__clang__)
  return "Clang " __clang_version__;
#elif defined(__GNUC__)
  return "GCC " __VERSION__;
#elif defined(_MSC_VER)
  return "MSVC " DTD_STR(_MSC_VER);
#else
  return "unknown";
#endif
}

std::vector<std::string> instruction_sets() {
  std::vector<std::string> sets;
#ifdef __SSE2__
  sets.emplace_back("SSE2");
#endif
#ifdef __SSE3__
  sets.emplace_back("SSE3");
#endif
#ifdef __SSSE3__
  sets.emplace_back("SSSE3");
#endif
#ifdef __SSE4_1__
  sets.emplace_back("SSE4.1");
#endif
#ifdef __SSE4_2__
  sets.emplace_back("SSE4.2");
#endif
#ifdef __POPCNT__
  sets.emplace_back("POPCNT");
#endif
#ifdef __AVX__
  sets.emplace_back("AVX");
#endif
#ifdef __AVX2__
  sets.emplace_back("AVX2");
#endif
#ifdef __FMA__
  sets.emplace_back("FMA");
#endif
#ifdef __F16C__
  sets.emplace_back("F16C");
#endif
#ifdef __BMI__
  sets.emplace_back("BMI1");
#endif
#ifdef __BMI2__
  sets.emplace_back("BMI2");
#endif
#ifdef __LZCNT__
  sets.emplace_back("LZCNT");
#endif
#ifdef __MOVBE__
  sets.emplace_back("MOVBE");
#endif
#ifdef __AVX512F__
  sets.emplace_back("AVX512F");
#endif
#ifdef __AVX512CD__
  sets.emplace_back("AVX512CD");
#endif
#ifdef __AVX512BW__
  sets.emplace_back("AVX512BW");
#endif
#ifdef __AVX512DQ__
  sets.emplace_back("AVX512DQ");
#endif
#ifdef __AVX512VL__
  sets.emplace_back("AVX512VL");
#endif
#ifdef __ARM_NEON
  sets.emplace_back("NEON");
#endif
  return sets;
}

}  // namespace

BuildInfo build_info() {
  BuildInfo info;
  info.variant = DTD_BUILD_VARIANT;
  info.arch_options = DTD_BUILD_ARCH_OPTIONS;
  info.compiler = compiler();
  info.build_type = DTD_BUILD_TYPE;
  info.eigen_version = DTD_STR(EIGEN_WORLD_VERSION) "." DTD_STR(EIGEN_MAJOR_VERSION) "." DTD_STR(EIGEN_MINOR_VERSION);
  info.eigen_simd = Eigen::SimdInstructionSetsInUse();
#ifdef _OPENMP
  info.openmp = _OPENMP;
#endif
  info.own_sgemm = detail::sgemm_available();
  info.sgemm_kernel = info.own_sgemm ? detail::sgemm_kernel_name() : "none";
  info.instruction_sets = instruction_sets();
  return info;
}

}  // namespace dtd
