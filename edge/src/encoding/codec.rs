//! gzip (flate2) and br (brotli) encoders over whole buffers, at the two levels the edge uses:
//! [`Level::Cached`] (high, once per rendered document) and [`Level::Fast`] (per response).
//!
//! Measured on this crate's brotli (pure Rust) with a 200 KB XML file on the 2-core machine:
//! br quality 11 took 4.2 s and 10 took 2.3 s for 2–8 % less than quality 9 (0.23 s); gzip 1
//! took 1.9 ms where br 1 took 7.4 ms for a larger output. Hence br 9 for cached documents and
//! gzip first for answers compressed per response (br is not cheap here).

use std::io::Write;

use bytes::Bytes;

use super::Encoding;

/// How hard to compress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Once per cached document: gzip 9, br 9 (5 past [`BR_HIGH_MAX`]).
    Cached,
    /// Per response: gzip 1, br 1.
    Fast,
}

/// Largest document compressed at br 9 (about 1 s a MiB here); a larger one (DescribeProcess
/// of ALL) gets br 5, several times faster and still smaller than gzip 9.
const BR_HIGH_MAX: usize = 1024 * 1024;

/// `data` encoded as `encoding` at `level` (identity: the same bytes).
pub fn encode(encoding: Encoding, data: &[u8], level: Level) -> Bytes {
    match encoding {
        Encoding::Identity => Bytes::copy_from_slice(data),
        Encoding::Gzip => gzip(data, level),
        Encoding::Br => br(data, level),
    }
}

fn gzip(data: &[u8], level: Level) -> Bytes {
    let level = match level {
        Level::Cached => flate2::Compression::best(),
        Level::Fast => flate2::Compression::fast(),
    };
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(data.len() / 4), level);
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(data);
    Bytes::from(encoder.finish().unwrap_or_default())
}

fn br(data: &[u8], level: Level) -> Bytes {
    let quality = match level {
        Level::Cached if data.len() <= BR_HIGH_MAX => 9,
        Level::Cached => 5,
        Level::Fast => 1,
    };
    let params = brotli::enc::BrotliEncoderParams {
        quality,
        // The smallest window that holds the whole body (10..=22 bits, brotli's range):
        // small answers do not allocate a 4 MiB ring buffer.
        lgwin: (usize::BITS - data.len().max(1).leading_zeros()).clamp(10, 22) as i32,
        size_hint: data.len(),
        ..Default::default()
    };
    let mut out = Vec::with_capacity(data.len() / 4);
    let mut input = data;
    // Reading a slice and writing a Vec cannot fail.
    let _ = brotli::BrotliCompress(&mut input, &mut out, &params);
    Bytes::from(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use std::io::Read;

    use super::*;

    /// `data` decoded from `encoding` with the reference decoders.
    pub(crate) fn decode(encoding: Encoding, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match encoding {
            Encoding::Identity => out.extend_from_slice(data),
            Encoding::Gzip => {
                flate2::read::GzDecoder::new(data)
                    .read_to_end(&mut out)
                    .unwrap();
            }
            Encoding::Br => {
                brotli::Decompressor::new(data, 4096)
                    .read_to_end(&mut out)
                    .unwrap();
            }
        }
        out
    }

    pub(crate) fn sample(len: usize) -> Vec<u8> {
        let mut text = String::new();
        let mut i = 0u64;
        while text.len() < len {
            text.push_str(&format!(
                "<wps:Process><ows:Identifier>native:p{i}</ows:Identifier><ows:Title>{}</ows:Title></wps:Process>\n",
                i.wrapping_mul(2_654_435_761) % 1000
            ));
            i += 1;
        }
        text.truncate(len);
        text.into_bytes()
    }

    #[test]
    fn every_encoding_round_trips_at_both_levels() {
        for len in [0, 1, 100, 5_000, 300_000] {
            let data = sample(len);
            for encoding in [Encoding::Identity, Encoding::Gzip, Encoding::Br] {
                for level in [Level::Cached, Level::Fast] {
                    let encoded = encode(encoding, &data, level);
                    assert_eq!(
                        decode(encoding, &encoded),
                        data,
                        "{encoding:?} {level:?} {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn cached_level_is_smaller_than_fast() {
        let data = sample(200_000);
        for encoding in [Encoding::Gzip, Encoding::Br] {
            let best = encode(encoding, &data, Level::Cached).len();
            let fast = encode(encoding, &data, Level::Fast).len();
            assert!(best < fast, "{encoding:?}: {best} !< {fast}");
            assert!(fast < data.len() / 4, "{encoding:?}: {fast}");
        }
    }
}
