//! Decides once whether the x86 vector kernels are compiled: on x86-64, unless built with
//! `--cfg dynapviz_portable`, which compiles the crate as for any other CPU (CI tests it that
//! way, see `.ci/run`). The code asks only `cfg(x86_kernels)`.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rustc-check-cfg=cfg(dynapviz_portable)");
    println!("cargo::rustc-check-cfg=cfg(x86_kernels)");
    let x86 = std::env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|arch| arch == "x86_64");
    let portable = std::env::var_os("CARGO_CFG_DYNAPVIZ_PORTABLE").is_some();
    if x86 && !portable {
        println!("cargo::rustc-cfg=x86_kernels");
    }
}
