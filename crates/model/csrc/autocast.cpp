// libtorch's autocast for one device type with a chosen lower precision.
// tch exposes only the deprecated CUDA-only switch, whose dtype stays
// float16; training in bfloat16, or on CPU, needs the device-typed API.
#include <ATen/autocast_mode.h>

namespace {
at::DeviceType device_type(int cuda) { return cuda ? at::kCUDA : at::kCPU; }
}  // namespace

extern "C" {

// Turns autocast on for CPU (cuda = 0) or CUDA (cuda = 1) computing in
// bfloat16 (bf16 = 1) or float16 (bf16 = 0); returns whether it was on.
int dfscan_autocast_enter(int cuda, int bf16) {
  const auto device = device_type(cuda);
  const bool previous = at::autocast::is_autocast_enabled(device);
  at::autocast::set_autocast_enabled(device, true);
  at::autocast::set_autocast_dtype(device, bf16 ? at::kBFloat16 : at::kHalf);
  at::autocast::increment_nesting();
  return previous ? 1 : 0;
}

// Leaves the region `dfscan_autocast_enter` opened: restores the previous
// switch and, at the outermost exit, frees autocast's cast-weight cache.
void dfscan_autocast_exit(int cuda, int previous) {
  if (at::autocast::decrement_nesting() == 0) {
    at::autocast::clear_cache();
  }
  at::autocast::set_autocast_enabled(device_type(cuda), previous != 0);
}

}  // extern "C"
