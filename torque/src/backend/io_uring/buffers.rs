//! The provided buffer ring every multishot receive of one reactor draws from
//! (`IORING_REGISTER_PBUF_RING`): the kernel picks a free buffer for each
//! completion and names it in the CQE; the backend gives it back once its bytes
//! were copied out. Nothing is allocated per connection.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::IoUring;

/// The buffer group id of the ring.
pub(super) const GROUP: u16 = 0;

/// An anonymous, page-aligned mapping, unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(len: usize) -> io::Result<Mapping> {
        // SAFETY: an anonymous private mapping with no address hint; the result
        // is checked before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Mapping { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `Mapping::new` with this length and is
        // unmapped once; the buffer ring was unregistered before (see `BufferRing`).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// The ring of `count` buffers of `size` bytes each.
pub(super) struct BufferRing {
    /// `count` `io_uring_buf` entries, shared with the kernel; the tail is in
    /// the first entry's reserved field.
    entries: Mapping,
    /// The buffers themselves, `size` bytes apart.
    storage: Mapping,
    count: u16,
    size: usize,
    /// Our copy of the tail (the kernel only reads it).
    tail: u16,
}

// SAFETY: the mappings are owned by this value alone; the kernel writes into
// the buffers only between handing one out (a CQE) and our giving it back, and
// the selector holding the ring moves between threads only as a whole.
unsafe impl Send for BufferRing {}

impl BufferRing {
    /// Maps `count` buffers of `size` bytes (`count` a power of two, at most
    /// 32768) and registers them with `ring` as group [`GROUP`].
    pub(super) fn new(ring: &IoUring, count: u16, size: usize) -> io::Result<BufferRing> {
        assert!(count.is_power_of_two() && count <= 32768);
        let entry_size = std::mem::size_of::<io_uring::types::BufRingEntry>();
        let mut buffers = BufferRing {
            entries: Mapping::new(usize::from(count) * entry_size)?,
            storage: Mapping::new(usize::from(count) * size)?,
            count,
            size,
            tail: 0,
        };
        for bid in 0..count {
            buffers.write_entry(bid);
        }
        buffers.publish();
        // SAFETY: the entries mapping is page-aligned, holds `count` entries and
        // lives until `unregister` (called by the selector before drop).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                buffers.entries.ptr.as_ptr() as u64,
                count,
                GROUP,
                0,
            )
        }?;
        Ok(buffers)
    }

    /// Stops the kernel using the ring (before the mappings go).
    pub(super) fn unregister(&self, ring: &IoUring) {
        let _ = ring.submitter().unregister_buf_ring(GROUP);
    }

    /// Buffer `bid`'s first `len` bytes, as the kernel filled them.
    pub(super) fn bytes(&self, bid: u16, len: usize) -> &[u8] {
        let bid = bid % self.count;
        let len = len.min(self.size);
        // SAFETY: `bid < count`, so the slice lies inside the storage mapping;
        // the kernel handed this buffer to us (a CQE) and does not touch it
        // until it is given back.
        unsafe {
            std::slice::from_raw_parts(self.storage.ptr.as_ptr().add(usize::from(bid) * self.size), len)
        }
    }

    /// Gives buffer `bid` back to the kernel.
    pub(super) fn give_back(&mut self, bid: u16) {
        self.write_entry(bid % self.count);
        self.publish();
    }

    /// Puts buffer `bid` at the tail (not yet visible to the kernel).
    fn write_entry(&mut self, bid: u16) {
        let index = usize::from(self.tail & (self.count - 1));
        let addr = self.storage.ptr.as_ptr() as u64 + u64::from(bid) * self.size as u64;
        let base = self.entries.ptr.as_ptr().cast::<io_uring::types::BufRingEntry>();
        // SAFETY: `index < count`, inside the entries mapping; the kernel reads
        // only entries below the published tail, and this one is past it.
        let entry = unsafe { &mut *base.add(index) };
        entry.set_addr(addr);
        entry.set_len(self.size as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes every written entry visible to the kernel.
    fn publish(&self) {
        let base = self.entries.ptr.as_ptr().cast::<io_uring::types::BufRingEntry>();
        // SAFETY: the tail field lies in the first entry of the mapping, is
        // 2-byte aligned, and is shared with the kernel only through atomic
        // accesses (a release store, as liburing's io_uring_buf_ring_advance).
        let tail = unsafe { &*io_uring::types::BufRingEntry::tail(base).cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
    }
}
