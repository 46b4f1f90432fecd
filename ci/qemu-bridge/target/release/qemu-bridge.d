/work/main/ci/qemu-bridge/target/release/qemu-bridge: /work/main/ci/qemu-bridge/src/main.rs
