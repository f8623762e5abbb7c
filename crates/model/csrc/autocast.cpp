// libtorch's autocast for one device type with a chosen lower precision.
// tch exposes only the deprecated CUDA-only switch, whose dtype stays
// float16; training in bfloat16, or on CPU, needs the device-typed API.
//
// Every entry point catches what libtorch throws (an unsupported device
// type, a failed check): a C++ exception unwinding into Rust frames is
// undefined behaviour. Errors come back as -1 with libtorch's message.
#include <ATen/autocast_mode.h>

#include <cstdio>
#include <exception>

namespace {

// Copies `what` into the caller's buffer, always terminated.
int fail(const char* what, char* error, size_t error_len) {
  if (error_len > 0) {
    std::snprintf(error, error_len, "%s", what);
  }
  return -1;
}

template <typename F>
int guarded(F body, char* error, size_t error_len) {
  try {
    body();
    return 0;
  } catch (const std::exception& e) {
    return fail(e.what(), error, error_len);
  } catch (...) {
    return fail("unknown C++ exception", error, error_len);
  }
}

at::DeviceType device_type(int code) { return static_cast<at::DeviceType>(code); }

}  // namespace

extern "C" {

// Turns autocast on for `device` (a c10::DeviceType value) computing in
// bfloat16 (bf16 = 1) or float16 (bf16 = 0). On success writes the state it
// replaced (enabled flag and dtype, a c10::ScalarType value) for
// `dfscan_autocast_exit`, and returns 0.
int dfscan_autocast_enter(int device, int bf16, int* previous_enabled,
                          int* previous_dtype, char* error, size_t error_len) {
  return guarded(
      [&] {
        const auto type = device_type(device);
        const bool enabled = at::autocast::is_autocast_enabled(type);
        const auto dtype = at::autocast::get_autocast_dtype(type);
        at::autocast::set_autocast_dtype(type, bf16 ? at::kBFloat16 : at::kHalf);
        at::autocast::set_autocast_enabled(type, true);
        at::autocast::increment_nesting();
        *previous_enabled = enabled ? 1 : 0;
        *previous_dtype = static_cast<int>(dtype);
      },
      error, error_len);
}

// Leaves the region `dfscan_autocast_enter` opened: restores the previous
// enabled flag and dtype and, at the outermost exit, frees autocast's
// cast-weight cache. Returns 0, or -1 with the error.
int dfscan_autocast_exit(int device, int previous_enabled, int previous_dtype,
                         char* error, size_t error_len) {
  return guarded(
      [&] {
        const auto type = device_type(device);
        if (at::autocast::decrement_nesting() == 0) {
          at::autocast::clear_cache();
        }
        at::autocast::set_autocast_dtype(type,
                                         static_cast<at::ScalarType>(previous_dtype));
        at::autocast::set_autocast_enabled(type, previous_enabled != 0);
      },
      error, error_len);
}

}  // extern "C"
