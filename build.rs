// Link arguments for libtorch, shared by every package whose binaries or
// tests load it: the root package's build script, which crates/model,
// crates/worker and crates/train include as theirs.
//
// torch-sys finds libtorch in the virtualenv's `torch` package but its link
// flags do not reach downstream binaries, so without this the binary would
// need `LD_LIBRARY_PATH`, and the linker's default `--as-needed` drops
// `libtorch_cuda` (nothing references it by symbol), which makes CUDA
// silently unavailable on GPU hosts.
//
// The flags go to every target of these packages. `dfscan-coordinator`,
// which must not load libtorch (`--no-as-needed -ltorch_cuda` would map all
// of it), is a binary of dfscan-process, which has neither torch-sys nor
// this build script.

use std::path::Path;

pub fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        panic!("torch-sys did not report libtorch's lib dir: run scripts/setup.sh first");
    };
    // Point the rpath at the real virtualenv, not the `.venv` link in one clone.
    let lib_dir = Path::new(&lib_dir)
        .canonicalize()
        .unwrap_or_else(|e| panic!("libtorch lib dir {lib_dir}: {e}"));
    let mut args = vec![format!("-Wl,-rpath,{}", lib_dir.display())];
    if lib_dir.join("libtorch_cuda.so").exists() {
        args.extend(["-Wl,--no-as-needed".into(), "-ltorch_cuda".into()]);
    }
    for arg in &args {
        println!("cargo:rustc-link-arg={arg}");
    }
}
