//! A structural pre-scan of untrusted MessagePack, run before serde sees a byte.
//!
//! MessagePack announces sizes up front: an `array32` header is five bytes that say "4 294 967 295 elements follow".
//! A decoder that believes the header and reserves room for them can be made to allocate gigabytes by a five-byte
//! message. Nesting is the other cheap attack: `[[[[[...]]]]]` a few thousand levels deep is a few kilobytes and
//! makes a recursive decoder (serde is one) recurse a few thousand times.
//!
//! [`check_structure`] walks the value once, without recursion and without allocating per element, and refuses:
//!
//! - nesting deeper than [`MAX_MSGPACK_DEPTH`];
//! - declared lengths that the remaining input cannot possibly hold. Every element takes at least one byte, so an
//!   array of `n` elements needs `n` more bytes and a map of `n` entries `2n`; a string or bin of `n` bytes needs
//!   `n`. The scan keeps the sum of everything still owed by all open containers and fails as soon as it exceeds
//!   the bytes left. After the scan, no length in the input is larger than the input, so no allocation serde makes
//!   from a length can be larger than the input either;
//! - MessagePack `ext` values (chatlab never sends them, so refusing them removes a code path an attacker could
//!   otherwise reach) and the reserved marker byte `0xc1`;
//! - bytes after the first complete value (each frame holds exactly one message);
//! - input that ends in the middle of a value.
//!
//! The walk uses the `rmp` crate's low-level readers to read markers and length headers; it does not check that
//! strings are valid UTF-8 or that the shape matches a message type, which is serde's job afterwards.

use rmp::Marker;
use thiserror::Error;

/// Deepest nesting of arrays and maps accepted.
///
/// The deepest real message is five levels (`{"HistoryPage": [req, [[id, from, {"User": name}, text, at]], more]}`).
/// Sixteen leaves room for future message shapes while bounding serde's recursion to a depth no stack notices.
pub const MAX_MSGPACK_DEPTH: usize = 16;

/// Why a byte string is not one well-formed, bounded MessagePack value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StructureError {
    /// The input is empty.
    #[error("empty input")]
    Empty,
    /// The input ends inside a value.
    #[error("input ends inside a value at byte {offset}")]
    Truncated {
        /// Where the value that could not be completed was being read.
        offset: usize,
    },
    /// Arrays and maps are nested deeper than [`MAX_MSGPACK_DEPTH`].
    #[error("nesting deeper than {max} levels at byte {offset}")]
    TooDeep {
        /// The limit, [`MAX_MSGPACK_DEPTH`].
        max: usize,
        /// Where the container that went too deep starts.
        offset: usize,
    },
    /// A length header announces more than the remaining input could hold.
    #[error("header at byte {offset} announces {declared} elements or bytes, but only {remaining} bytes remain")]
    LengthExceedsInput {
        /// Where the header starts.
        offset: usize,
        /// The announced length (elements for arrays, entries for maps, bytes for str and bin).
        declared: u64,
        /// Bytes left after the header.
        remaining: usize,
    },
    /// A MessagePack `ext` value; chatlab never uses them.
    #[error("unsupported MessagePack ext value at byte {offset}")]
    Ext {
        /// Where the value starts.
        offset: usize,
    },
    /// The reserved marker byte `0xc1`, which MessagePack never assigns.
    #[error("reserved marker byte 0xc1 at byte {offset}")]
    ReservedMarker {
        /// Where the byte is.
        offset: usize,
    },
    /// Bytes follow the complete value.
    #[error("{count} unexpected bytes after the message")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
}

/// Checks that `input` is exactly one MessagePack value within the limits described in the module docs.
pub fn check_structure(input: &[u8]) -> Result<(), StructureError> {
    if input.is_empty() {
        return Err(StructureError::Empty);
    }
    let mut rest = input;
    // Items still to be read in each open container, innermost last. A map of n entries owes 2n items.
    let mut open: Vec<u64> = Vec::with_capacity(MAX_MSGPACK_DEPTH);
    // Sum of `open`: items every open container still expects. Each needs at least one byte.
    let mut owed: u64 = 0;
    // The top-level value itself.
    let mut pending_top = true;

    while pending_top || owed > 0 {
        let offset = input.len() - rest.len();
        // Take one item from the innermost open container (or the top level) before reading it.
        if pending_top {
            pending_top = false;
        } else {
            // The loop condition guarantees `owed > 0`, and then the innermost open container owes at least one
            // item; saturating keeps a broken invariant from ever becoming a panic.
            owed = owed.saturating_sub(1);
            if let Some(last) = open.last_mut() {
                *last = last.saturating_sub(1);
            }
        }

        let &first = rest.first().ok_or(StructureError::Truncated { offset })?;
        let children = match Marker::from_u8(first) {
            Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => {
                let len = rmp::decode::read_array_len(&mut rest).map_err(|_| StructureError::Truncated { offset })?;
                Some(u64::from(len))
            }
            Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => {
                let len = rmp::decode::read_map_len(&mut rest).map_err(|_| StructureError::Truncated { offset })?;
                Some(u64::from(len) * 2)
            }
            Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => {
                let len = rmp::decode::read_str_len(&mut rest).map_err(|_| StructureError::Truncated { offset })?;
                rest = skip(rest, len, offset)?;
                None
            }
            Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => {
                let len = rmp::decode::read_bin_len(&mut rest).map_err(|_| StructureError::Truncated { offset })?;
                rest = skip(rest, len, offset)?;
                None
            }
            Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null | Marker::True | Marker::False => {
                rest = rest.get(1..).unwrap_or_default();
                None
            }
            Marker::U8 | Marker::I8 => {
                rest = skip_scalar(rest, 1, offset)?;
                None
            }
            Marker::U16 | Marker::I16 => {
                rest = skip_scalar(rest, 2, offset)?;
                None
            }
            Marker::U32 | Marker::I32 | Marker::F32 => {
                rest = skip_scalar(rest, 4, offset)?;
                None
            }
            Marker::U64 | Marker::I64 | Marker::F64 => {
                rest = skip_scalar(rest, 8, offset)?;
                None
            }
            Marker::FixExt1
            | Marker::FixExt2
            | Marker::FixExt4
            | Marker::FixExt8
            | Marker::FixExt16
            | Marker::Ext8
            | Marker::Ext16
            | Marker::Ext32 => return Err(StructureError::Ext { offset }),
            Marker::Reserved => return Err(StructureError::ReservedMarker { offset }),
        };

        if let Some(items) = children {
            if open.len() >= MAX_MSGPACK_DEPTH {
                return Err(StructureError::TooDeep { max: MAX_MSGPACK_DEPTH, offset });
            }
            // `owed` never exceeds the input length (checked below) and `items` is at most 2 * u32::MAX, so the
            // sum fits a u64; checked arithmetic keeps that an argument rather than an assumption.
            let total = owed.checked_add(items);
            let remaining = rest.len();
            match total {
                Some(total) if total <= remaining as u64 => owed = total,
                _ => {
                    return Err(StructureError::LengthExceedsInput { offset, declared: items, remaining });
                }
            }
            open.push(items);
        }
        // Close every container whose last item has just been read.
        while open.last() == Some(&0) {
            open.pop();
        }
    }

    if rest.is_empty() { Ok(()) } else { Err(StructureError::TrailingBytes { count: rest.len() }) }
}

/// Skips the `len`-byte body of a str or bin whose header started at `offset`.
fn skip(rest: &[u8], len: u32, offset: usize) -> Result<&[u8], StructureError> {
    usize::try_from(len).ok().and_then(|len| rest.get(len..)).ok_or(StructureError::LengthExceedsInput {
        offset,
        declared: u64::from(len),
        remaining: rest.len(),
    })
}

/// Skips a one-byte marker and `width` bytes of fixed-size payload.
fn skip_scalar(rest: &[u8], width: usize, offset: usize) -> Result<&[u8], StructureError> {
    rest.get(1 + width..).ok_or(StructureError::Truncated { offset })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nested_arrays(depth: usize) -> Vec<u8> {
        let mut bytes = vec![0x91; depth];
        bytes.push(0x00);
        bytes
    }

    #[test]
    fn accepts_scalars_of_every_width() {
        for input in [
            &[0x05][..],
            &[0xe0],
            &[0xc0],
            &[0xc2],
            &[0xc3],
            &[0xcc, 1],
            &[0xd0, 1],
            &[0xcd, 1, 2],
            &[0xd1, 1, 2],
            &[0xce, 1, 2, 3, 4],
            &[0xca, 1, 2, 3, 4],
            &[0xd2, 1, 2, 3, 4],
            &[0xcf, 1, 2, 3, 4, 5, 6, 7, 8],
            &[0xcb, 1, 2, 3, 4, 5, 6, 7, 8],
            &[0xd3, 1, 2, 3, 4, 5, 6, 7, 8],
        ] {
            assert_eq!(check_structure(input), Ok(()), "{input:02x?}");
        }
    }

    #[test]
    fn accepts_real_containers() {
        // {"a": [1, "xy", bin(2)]}
        let input = [0x81, 0xa1, b'a', 0x93, 0x01, 0xa2, b'x', b'y', 0xc4, 2, 9, 9];
        assert_eq!(check_structure(&input), Ok(()));
        // Empty containers and a map16/array16/str8 header.
        assert_eq!(check_structure(&[0x92, 0x90, 0x80]), Ok(()));
        assert_eq!(check_structure(&[0xdc, 0, 1, 0xde, 0, 0]), Ok(()));
        assert_eq!(check_structure(&[0xd9, 1, b'z']), Ok(()));
    }

    #[test]
    fn rejects_empty_input() {
        assert_eq!(check_structure(&[]), Err(StructureError::Empty));
    }

    #[test]
    fn accepts_the_maximum_depth() {
        assert_eq!(check_structure(&nested_arrays(MAX_MSGPACK_DEPTH)), Ok(()));
    }

    #[test]
    fn rejects_one_level_too_deep() {
        assert_eq!(
            check_structure(&nested_arrays(MAX_MSGPACK_DEPTH + 1)),
            Err(StructureError::TooDeep { max: MAX_MSGPACK_DEPTH, offset: MAX_MSGPACK_DEPTH })
        );
    }

    #[test]
    fn sibling_containers_do_not_add_depth() {
        // An array of 15 empty arrays is 2 levels deep, not 16.
        let mut input = vec![0x90 | 15];
        input.extend([0x90; 15]);
        assert_eq!(check_structure(&input), Ok(()));
    }

    #[test]
    fn rejects_a_huge_array_claim_in_five_bytes() {
        assert_eq!(
            check_structure(&[0xdd, 0xff, 0xff, 0xff, 0xff]),
            Err(StructureError::LengthExceedsInput { offset: 0, declared: u64::from(u32::MAX), remaining: 0 })
        );
    }

    #[test]
    fn map_entries_count_twice() {
        // A fixmap of 1 entry needs 2 items; only 1 byte follows.
        assert_eq!(
            check_structure(&[0x81, 0x01]),
            Err(StructureError::LengthExceedsInput { offset: 0, declared: 2, remaining: 1 })
        );
    }

    #[test]
    fn owed_items_of_outer_containers_count() {
        // [[x, x], x] with only 3 bytes after the inner header: the outer array still owes one item.
        assert_eq!(
            check_structure(&[0x92, 0x92, 0x01, 0x01]),
            Err(StructureError::LengthExceedsInput { offset: 1, declared: 2, remaining: 2 })
        );
    }

    #[test]
    fn rejects_string_longer_than_input() {
        assert_eq!(
            check_structure(&[0xdb, 0x7f, 0xff, 0xff, 0xff, b'a']),
            Err(StructureError::LengthExceedsInput { offset: 0, declared: 0x7fff_ffff, remaining: 1 })
        );
        assert_eq!(
            check_structure(&[0xc4, 3, 1]),
            Err(StructureError::LengthExceedsInput { offset: 0, declared: 3, remaining: 1 })
        );
    }

    #[test]
    fn rejects_truncated_headers_and_scalars() {
        assert_eq!(check_structure(&[0xdc, 0]), Err(StructureError::Truncated { offset: 0 }));
        assert_eq!(check_structure(&[0xd9]), Err(StructureError::Truncated { offset: 0 }));
        assert_eq!(check_structure(&[0xc5, 0]), Err(StructureError::Truncated { offset: 0 }));
        assert_eq!(check_structure(&[0xdf, 0, 0]), Err(StructureError::Truncated { offset: 0 }));
        assert_eq!(check_structure(&[0x91, 0xcf, 1, 2]), Err(StructureError::Truncated { offset: 1 }));
    }

    #[test]
    fn rejects_ext_values() {
        for marker in [0xd4u8, 0xd5, 0xd6, 0xd7, 0xd8, 0xc7, 0xc8, 0xc9] {
            assert_eq!(
                check_structure(&[marker, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
                Err(StructureError::Ext { offset: 0 }),
                "{marker:02x}"
            );
        }
    }

    #[test]
    fn rejects_reserved_marker() {
        assert_eq!(check_structure(&[0x91, 0xc1]), Err(StructureError::ReservedMarker { offset: 1 }));
    }

    #[test]
    fn rejects_trailing_bytes() {
        assert_eq!(check_structure(&[0x01, 0x02, 0x03]), Err(StructureError::TrailingBytes { count: 2 }));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = check_structure(&input);
        }

        #[test]
        fn accepts_what_rmp_serde_writes(
            values in proptest::collection::vec((any::<i64>(), ".{0,20}", any::<Option<bool>>()), 0..20),
        ) {
            let bytes = rmp_serde::to_vec(&values).expect("encode");
            prop_assert_eq!(check_structure(&bytes), Ok(()));
        }
    }
}
