// Link libsilo-client.so.0 (lib/client). SILO_CLIENT_LIB_DIR names the
// directory holding it (a meson build's lib/client); otherwise the system's
// library path (an installed libsilo-client).
fn main() {
    println!("cargo:rerun-if-env-changed=SILO_CLIENT_LIB_DIR");
    if let Ok(dir) = std::env::var("SILO_CLIENT_LIB_DIR") {
        println!("cargo:rustc-link-search=native={dir}");
    }
    println!("cargo:rustc-link-lib=dylib=silo-client");
}
