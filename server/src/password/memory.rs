//! The memory Argon2 fills: mapped from the operating system for the hash, and given back to it afterwards.
//!
//! Argon2id with the server's parameters fills 19 MiB per hash. Left to the general-purpose allocator, that memory
//! does not come back: glibc serves an allocation this large with `mmap` only until the first one is freed, then
//! raises its threshold and carves the next ones out of its heaps (one *arena* per thread, up to eight per core),
//! and a heap keeps freed memory unless a large piece at its top is free. Hashes on tokio's blocking pool run on
//! whichever thread is free, so every thread's arena ended up holding blocks of its own: the server grew from 7 MB
//! to hundreds of megabytes after a few dozen logins and never shrank.
//!
//! [`HashMemory`] takes the allocator out of the picture: it maps anonymous memory straight from the kernel
//! (`mmap`), hands it to Argon2 as its block array, and unmaps it ([`HashMemory::release`]), which returns every
//! page at once. The password pool keeps one per thread and releases it whenever no hash is waiting, so a burst of
//! logins reuses the same pages and an idle server holds none.

use std::io;

use argon2::Block;
use memmap2::MmapMut;

/// Argon2's blocks are 1 KiB of `u64` words, aligned to 64 bytes. The cast in [`HashMemory::blocks`] relies on
/// both: a block is exactly its 1 024 bytes (no padding, so any initialised bytes are a valid block), and a page
/// (at least 4 KiB, where every mapping starts) is aligned enough for it.
const _: () = assert!(std::mem::size_of::<Block>() == Block::SIZE);
const _: () = assert!(std::mem::align_of::<Block>() <= 4096);

/// Memory for Argon2's blocks, mapped on first use and unmapped by [`release`](Self::release) (or on drop).
#[derive(Debug, Default)]
pub struct HashMemory {
    map: Option<MmapMut>,
}

impl HashMemory {
    /// No memory yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// `count` blocks, mapping (or growing) the memory if needed. Their content is whatever the last hash left, or
    /// zeros: Argon2 writes every block before it reads it.
    pub fn blocks(&mut self, count: usize) -> io::Result<&mut [Block]> {
        let bytes = count
            .checked_mul(Block::SIZE)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "Argon2 memory size overflows"))?;
        if self.map.as_ref().is_none_or(|map| map.len() < bytes) {
            // Unmap the smaller region first, so growing never holds both.
            self.map = None;
            self.map = Some(MmapMut::map_anon(bytes.max(1))?);
        }
        let map = self.map.as_mut().ok_or_else(|| io::Error::other("Argon2 memory is not mapped"))?;
        let region = map.get_mut(..bytes).ok_or_else(|| io::Error::other("Argon2 memory is too small"))?;
        // SAFETY: `region` is `count * Block::SIZE` initialised bytes (an anonymous mapping starts zeroed, and is
        // only ever written with whole blocks), borrowed mutably from `self` for the returned lifetime, and starts
        // at a page boundary, which satisfies `Block`'s alignment (checked above). `Block` is a plain array of
        // `u64` with no padding (checked above), so every bit pattern is a valid block.
        Ok(unsafe { std::slice::from_raw_parts_mut(region.as_mut_ptr().cast::<Block>(), count) })
    }

    /// Gives the memory back to the operating system at once.
    pub fn release(&mut self) {
        self.map = None;
    }

    /// Bytes mapped now.
    pub fn mapped_bytes(&self) -> usize {
        self.map.as_ref().map_or(0, |map| map.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_mapped_on_demand_reused_and_released() {
        let mut memory = HashMemory::new();
        assert_eq!(memory.mapped_bytes(), 0);
        let blocks = memory.blocks(16).unwrap();
        assert_eq!(blocks.len(), 16);
        blocks[15] = Block::new();
        assert_eq!(memory.mapped_bytes(), 16 * Block::SIZE);
        assert_eq!(memory.blocks(8).unwrap().len(), 8, "a smaller request reuses the mapping");
        assert_eq!(memory.mapped_bytes(), 16 * Block::SIZE);
        assert_eq!(memory.blocks(32).unwrap().len(), 32, "a larger one grows it");
        assert_eq!(memory.mapped_bytes(), 32 * Block::SIZE);
        memory.release();
        assert_eq!(memory.mapped_bytes(), 0);
    }

    #[test]
    fn an_impossible_size_is_an_error_not_a_panic() {
        assert!(HashMemory::new().blocks(usize::MAX).is_err());
    }
}
