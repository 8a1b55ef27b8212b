// How this build of the dtd core was compiled: the instruction-set level and options, compiler, Eigen, OpenMP.
#pragma once

#include <string>
#include <vector>

namespace dtd {

struct BuildInfo {
  std::string variant;       ///< instruction-set level: "v2", "v3", "v4" (x86-64 levels), "native" or "baseline"
  std::string arch_options;  ///< the compiler options that chose it, e.g. "-march=x86-64-v3" (empty: the default)
  std::string compiler;      ///< compiler and version
  std::string build_type;    ///< CMake build type, e.g. "Release"
  std::string eigen_version;
  std::string eigen_simd;  ///< the SIMD instruction sets Eigen's kernels use in this build
  int openmp = 0;          ///< _OPENMP (the supported OpenMP version as yyyymm), 0 without OpenMP
  bool own_sgemm = false;  ///< dtd's own SGEMM micro-kernel runs float products (else GEMMs go to Eigen)
  /// Which micro-kernel: "avx512 8x32" (AVX-512F builds), "avx2 6x16" (AVX2 + FMA builds), or "none" (no kernel in
  /// this build, or DTD_SGEMM=0): Eigen's GEMM then runs every product.
  std::string sgemm_kernel;
  /// Instruction sets the compiler was allowed to use: "SSE4.2", "AVX", "AVX2", "FMA", "AVX512F", ...
  std::vector<std::string> instruction_sets;
};

/// The build of the dtd core linked into the caller.
BuildInfo build_info();

}  // namespace dtd
