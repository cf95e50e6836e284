// 16 values of T as one vector value (GCC/Clang vector extensions): kernels that keep a block of
// accumulators in registers use these, since plain arrays of accumulators get spilled to the
// stack. 16 floats fill one AVX-512 register; elsewhere the compiler splits them.
#pragma once

#include <cstdint>
#include <cstring>

namespace fusedrnn {
namespace cpu {

constexpr int64_t kLanes = 16;

// Spelled per type: GCC drops vector_size on an alias template of a dependent type.
template <typename T>
struct LanesOf;
template <>
struct LanesOf<float> {
  typedef float type __attribute__((vector_size(kLanes * sizeof(float))));
};
template <>
struct LanesOf<double> {
  typedef double type __attribute__((vector_size(kLanes * sizeof(double))));
};
template <typename T>
using Lanes = typename LanesOf<T>::type;
static_assert(sizeof(Lanes<float>) == kLanes * sizeof(float), "16 lanes");

template <typename T>
inline Lanes<T> load_lanes(const T* p) {  // unaligned
  Lanes<T> v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

template <typename T>
inline void store_lanes(T* p, const Lanes<T>& v) {  // unaligned
  std::memcpy(p, &v, sizeof(v));
}

}  // namespace cpu
}  // namespace fusedrnn
