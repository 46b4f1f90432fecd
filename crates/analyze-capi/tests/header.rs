//! The committed header is the one cbindgen writes from the source: a C
//! program compiled against it sees exactly this library's API.
//!
//! `CIOT_E2E_BLESS=1 cargo test -p ciot-e2e-analyze-capi --test header` rewrites it
//! after an API change.

use std::path::Path;

#[test]
fn committed_header_is_what_cbindgen_writes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src/lib.rs"))
        .generate()
        .expect("cbindgen parses the crate")
        .write(&mut generated);
    let path = dir.join("include/ciot_e2e_analyze.h");
    if std::env::var_os("CIOT_E2E_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write the header");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} differs from what cbindgen writes from the source; review the API change and \
         run `CIOT_E2E_BLESS=1 cargo test -p ciot-e2e-analyze-capi --test header`",
        path.display()
    );
}
