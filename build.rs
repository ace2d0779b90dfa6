//! Compiles the Slint UI (feature `kiosk`). Debug info is always emitted:
//! it is what lets the UI tests and screen readers find elements by their
//! `accessible-label`, and keeping it the same for build and test avoids
//! compiling the UI twice.

fn main() {
    #[cfg(feature = "kiosk")]
    {
        let config = slint_build::CompilerConfiguration::new().with_debug_info(true);
        slint_build::compile_with_config("ui/main.slint", config).expect("the Slint UI compiles");
    }
}
