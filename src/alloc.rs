//! Zeroed buffers for the model's weights, backed by huge pages where Linux offers
//! them.
//!
//! A fresh buffer's memory is mapped page by page as it is first written: for
//! codebert-base's 476 MiB of weights that is over 100,000 page faults, each zeroing
//! 4 KiB, and on a virtual machine they cost about as much as reading the whole file.
//! Transparent huge pages (2 MiB) take one fault per 512 of them and then need 512
//! times fewer TLB entries while the matrix kernels stream the weights. Most systems
//! give huge pages only to memory that asks for them (`madvise` mode), so buffers of
//! a few MiB and more ask.

/// Buffers at least this large are advised; smaller ones would gain little.
const ADVISE_FROM_BYTES: usize = 4 << 20;

/// `len` zero values, their memory advised for huge pages when large.
pub(crate) fn zeroed_vec<T: bytemuck::Zeroable + Clone>(len: usize) -> Vec<T> {
    // `vec![zero; len]` of a zeroable type is a calloc: fresh pages, not yet touched,
    // so the advice applies before any of them is mapped.
    let buffer = vec![T::zeroed(); len];
    advise_huge_pages(&buffer);
    buffer
}

#[cfg(target_os = "linux")]
fn advise_huge_pages<T>(buffer: &[T]) {
    const HUGE_PAGE: usize = 2 << 20;
    let bytes = std::mem::size_of_val(buffer);
    if bytes < ADVISE_FROM_BYTES {
        return;
    }
    // The whole huge pages inside the buffer; the advice is per page range.
    let start = (buffer.as_ptr() as usize).next_multiple_of(HUGE_PAGE);
    let end = (buffer.as_ptr() as usize + bytes) / HUGE_PAGE * HUGE_PAGE;
    if end > start {
        // SAFETY: the range lies inside `buffer`'s allocation; MADV_HUGEPAGE changes
        // how its pages are backed, never their contents. Failure (a kernel without
        // transparent huge pages) leaves ordinary pages, which is fine.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages<T>(_buffer: &[T]) {}

#[cfg(test)]
mod tests {
    use super::zeroed_vec;

    #[test]
    fn large_and_small_buffers_are_zero_and_writable() {
        for len in [0usize, 3, 1 << 20, (5 << 20) + 7] {
            let mut buffer: Vec<u32> = zeroed_vec(len);
            assert_eq!(buffer.len(), len);
            assert!(buffer.iter().all(|&x| x == 0));
            if let Some(last) = buffer.last_mut() {
                *last = 7;
            }
            assert!(len == 0 || buffer[len - 1] == 7);
        }
    }
}
