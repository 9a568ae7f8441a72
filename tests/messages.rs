//! Messages a user reads when the data or the request does not fit: words, the cause and what
//! to do instead.

mod common;

/// Data larger than the adapter's largest storage binding: the message says the data does not
/// fit and offers the CPU reference, not a smaller batch.
#[test]
fn data_over_the_adapters_limits_says_so_and_offers_the_cpu() {
    let ctx = common::gpu();
    let max = ctx.limits.max_storage_buffer_binding_size as usize;
    let too_big = vec![0u8; max + 4];
    let e = ctx.buffer_init("big.csv features", &too_big, wgpu::BufferUsages::STORAGE).unwrap_err().to_string();
    assert!(e.contains("the data big.csv does not fit this adapter") && e.contains("--device cpu"), "{e}");
    assert!(!e.contains("smaller batch"), "{e}");
    let e = ctx.buffer_init("gram", &too_big, wgpu::BufferUsages::STORAGE).unwrap_err().to_string();
    assert!(e.contains("gram needs") && e.contains("fewer points"), "{e}");
    assert!(e.contains(" MB") || e.contains(" GB"), "sizes in words: {e}");
}
