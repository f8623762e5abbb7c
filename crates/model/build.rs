// libtorch's link arguments (shared with the other crates that load it)
// and the autocast shim, compiled against the same libtorch's headers.
#[path = "../../build.rs"]
mod libtorch_link;

fn main() {
    libtorch_link::main();
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB").expect("checked by libtorch_link");
    let include = std::path::Path::new(&lib)
        .parent()
        .expect("libtorch's lib dir has a parent")
        .join("include");
    println!("cargo:rerun-if-changed=csrc/autocast.cpp");
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .file("csrc/autocast.cpp")
        .include(&include)
        // libtorch's own headers are not warning-free.
        .warnings(false)
        .flag_if_supported("-w")
        .compile("dfscan_autocast");
}
