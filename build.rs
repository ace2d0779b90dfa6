//! Compiles the Slint UI (feature `kiosk`). Debug info is always emitted:
//! it is what lets the UI tests and screen readers find elements by their
//! `accessible-label`, and keeping it the same for build and test avoids
//! compiling the UI twice.
//!
//! The translations under `ui/translations/<lang>/LC_MESSAGES/huddle-board.po`
//! are bundled into the binary (no gettext, no files to install on the Pi).
//! Messages carry no context: one English text has one translation on every
//! screen, which keeps the catalogues a quarter the size of per-component
//! ones (see ui/translations/README.md).

fn main() {
    #[cfg(feature = "kiosk")]
    {
        let config = slint_build::CompilerConfiguration::new()
            .with_debug_info(true)
            .with_bundled_translations("ui/translations")
            .with_default_translation_context(slint_build::DefaultTranslationContext::None);
        slint_build::compile_with_config("ui/main.slint", config).expect("the Slint UI compiles");
    }
}
