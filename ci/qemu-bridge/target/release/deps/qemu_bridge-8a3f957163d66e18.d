/work/main/ci/qemu-bridge/target/release/deps/qemu_bridge-8a3f957163d66e18.d: src/main.rs

/work/main/ci/qemu-bridge/target/release/deps/qemu_bridge-8a3f957163d66e18: src/main.rs

src/main.rs:
