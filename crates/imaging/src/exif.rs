//! The EXIF orientation that `ImageOps.exif_transpose` acts on.
//!
//! Pillow does not use a general EXIF library: `Image.getexif()` reads the
//! first TIFF IFD with its own rules (first duplicate wins, unknown types are
//! skipped, a truncated entry ends the directory, count>1 keeps the first
//! value, `6.0` and `12/2` match `6`), then falls back to a regex over XMP.
//! Reproducing those rules here is what makes rotated uploads come out the
//! same way round as in Python, including for malformed metadata.
//!
//! Only the first IFD is read (no chain is followed), and a directory is
//! walked entry by entry only as far as its bytes go: a count declared in
//! the header, even 2^64 in a BigTIFF, costs at most one step per 12 (or
//! 20) bytes present.

/// What a container (JPEG, PNG, WebP, TIFF) stores under Pillow's
/// `info["exif"]`, `info["XML:com.adobe.xmp"]` and `info["xmp"]`.
#[derive(Debug, Default)]
pub(crate) struct Metadata {
    pub exif: Option<ExifSource>,
    /// PNG text value of `XML:com.adobe.xmp` (consulted first).
    pub xmp_text: Option<Vec<u8>>,
    /// Raw XMP packet (JPEG APP1, WebP `XMP ` chunk, PNG iTXt).
    pub xmp: Option<Vec<u8>>,
    /// JPEG only: Pillow already called `getexif()` while opening and
    /// swallowed its parse errors, leaving an empty, cached result.
    pub swallow_exif_errors: bool,
}

/// Where the EXIF bytes come from.
#[derive(Debug)]
pub(crate) enum ExifSource {
    /// Bytes of an APP1 / eXIf / EXIF payload, possibly `Exif\0\0`-prefixed.
    Bytes(Vec<u8>),
    /// PNG `Raw profile type exif` text: ImageMagick's hex dump.
    RawProfileHex(Vec<u8>),
    /// A PNG text chunk called `exif` with compressed or UTF-8 text; Pillow
    /// hands a `str` to a bytes regex there and fails.
    Text,
    /// The file itself is a TIFF: its first IFD holds the tags.
    TiffFile,
}

/// The transposition to apply: `1` means none, `2..=8` the EXIF codes.
pub(crate) type OrientationCode = u8;

impl Metadata {
    /// Orientation as `exif_transpose` would see it, or an error where Pillow
    /// raises from `getexif()` (which makes `load_image` fail). `file` is the
    /// whole encoded image, read for [`ExifSource::TiffFile`].
    pub(crate) fn orientation(&self, file: &[u8]) -> Result<OrientationCode, String> {
        let tag = match self.exif_orientation(file) {
            Ok(tag) => tag,
            Err(_) if self.swallow_exif_errors => return Ok(1),
            Err(e) => return Err(e),
        };
        let value = match tag {
            Some(value) => value,
            None => match self.xmp_orientation() {
                Some(digit) => Value::Int(i64::from(digit)),
                None => return Ok(1),
            },
        };
        Ok(value.transpose_code())
    }

    fn exif_orientation(&self, file: &[u8]) -> Result<Option<Value>, String> {
        match &self.exif {
            None => Ok(None),
            Some(ExifSource::Bytes(data)) => exif_load(data),
            Some(ExifSource::RawProfileHex(text)) => exif_load(&raw_profile_bytes(text)?),
            Some(ExifSource::Text) => Err("EXIF stored as a text chunk".into()),
            Some(ExifSource::TiffFile) => {
                let ifd = Ifd::from_header(file)?;
                Ok(ifd.orientation(file))
            }
        }
    }

    /// `re.search(r'tiff:Orientation(="|>)([0-9])', xmp)`.
    fn xmp_orientation(&self) -> Option<u8> {
        let xmp = match &self.xmp_text {
            Some(text) if !text.is_empty() => text,
            _ => self.xmp.as_ref().filter(|x| !x.is_empty())?,
        };
        const NEEDLE: &[u8] = b"tiff:Orientation";
        (0..xmp.len()).find_map(|i| {
            let rest = xmp[i..].strip_prefix(NEEDLE)?;
            let digit = match rest {
                [b'=', b'"', d, ..] | [b'>', d, ..] => *d,
                _ => return None,
            };
            digit.is_ascii_digit().then(|| digit - b'0')
        })
    }
}

/// `bytes.fromhex("".join(text.split("\n")[3:]))`.
fn raw_profile_bytes(text: &[u8]) -> Result<Vec<u8>, String> {
    let hex: Vec<u8> = text
        .split(|&b| b == b'\n')
        .skip(3)
        .flatten()
        .copied()
        .collect();
    let is_space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r');
    let digit = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
    let mut out = Vec::with_capacity(hex.len() / 2);
    let mut i = 0;
    while i < hex.len() {
        if is_space(hex[i]) {
            i += 1;
            continue;
        }
        match (digit(hex.get(i)), digit(hex.get(i + 1))) {
            (Some(hi), Some(lo)) => out.push((hi * 16 + lo) as u8),
            _ => return Err("invalid hex in PNG 'Raw profile type exif' text".into()),
        }
        i += 2;
    }
    Ok(out)
}

/// `Exif.load(data)`: strip up to two `Exif\0\0` prefixes, parse the TIFF
/// header, read the first IFD.
fn exif_load(data: &[u8]) -> Result<Option<Value>, String> {
    let mut data = data;
    for _ in 0..2 {
        data = data.strip_prefix(b"Exif\0\0").unwrap_or(data);
    }
    if data.is_empty() {
        return Ok(None);
    }
    let ifd = Ifd::from_header(data)?;
    if ifd.big {
        // Pillow unpacks a BigTIFF offset from the 8-byte header it read and
        // gets a struct.error.
        return Err("invalid EXIF: BigTIFF header".into());
    }
    Ok(ifd.orientation(data))
}

/// `info["xmp"]` of a TIFF file: tag 700 when stored as bytes.
pub(crate) fn tiff_xmp(file: &[u8]) -> Option<Vec<u8>> {
    let ifd = Ifd::from_header(file).ok()?;
    match ifd.lookup(file, XMP_TAG)? {
        (1 | 7, bytes) => Some(bytes.to_vec()),
        _ => None,
    }
}

/// Every inline integer value the first IFD of a TIFF file gives its
/// `Compression` tag (259), duplicates included: what a decoder may use,
/// whichever duplicate it believes.
pub(crate) fn tiff_compressions(file: &[u8]) -> Vec<i64> {
    let Ok(ifd) = Ifd::from_header(file) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    ifd.walk(file, |tag, typ, field| {
        if tag == COMPRESSION_TAG {
            if let Value::Int(v) = ifd.first_value(typ, field) {
                found.push(v);
            }
        }
    });
    found
}

const COMPRESSION_TAG: u16 = 259;
const ORIENTATION_TAG: u16 = 274;
const XMP_TAG: u16 = 700;

/// Byte order and layout of a TIFF structure.
struct Ifd {
    big_endian: bool,
    big: bool,
    first_offset: u64,
}

/// A numeric reading of the tag, kept in the width Pillow compares it in.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Value {
    Int(i64),
    Float(f64),
    Rational(i64, i64),
    /// Bytes or text: present, but never equal to an orientation code.
    Other,
}

impl Value {
    /// `{2: FLIP_LEFT_RIGHT, ..., 8: ROTATE_90}.get(value)` — dict lookup by
    /// hash and equality, so `6.0` and `Fraction(12, 2)` find key `6`.
    fn transpose_code(self) -> OrientationCode {
        let exact = match self {
            Value::Int(v) => Some(v),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 16.0 => Some(f as i64),
            Value::Rational(n, d) if d != 0 && n % d == 0 => Some(n / d),
            _ => None,
        };
        match exact {
            Some(v @ 2..=8) => v as u8,
            _ => 1,
        }
    }
}

impl Ifd {
    /// `ImageFileDirectory_v2(head)`: validates the 8-byte header.
    fn from_header(data: &[u8]) -> Result<Ifd, String> {
        let head = &data[..data.len().min(8)];
        let accepted = crate::format::TIFF_PREFIXES
            .iter()
            .any(|p| head.starts_with(p));
        if !accepted {
            return Err("invalid EXIF: not a TIFF header".into());
        }
        let big_endian = head.starts_with(b"MM");
        let big = head[2] == 43;
        if head.len() < 8 {
            return Err("invalid EXIF: truncated TIFF header".into());
        }
        let mut ifd = Ifd {
            big_endian,
            big,
            first_offset: 0,
        };
        ifd.first_offset = if big {
            // A real BigTIFF file: the offset follows the 8-byte header.
            match data.get(8..16) {
                Some(b) => ifd.uint(b),
                None => return Err("invalid TIFF: truncated BigTIFF header".into()),
            }
        } else {
            ifd.uint(&head[4..8])
        };
        Ok(ifd)
    }

    /// Unsigned integer of 1, 2, 4 or 8 bytes in the file's byte order.
    fn uint(&self, b: &[u8]) -> u64 {
        let fold = |acc: u64, &x: &u8| (acc << 8) | u64::from(x);
        if self.big_endian {
            b.iter().fold(0, fold)
        } else {
            b.iter().rev().fold(0, fold)
        }
    }

    fn sint(&self, b: &[u8]) -> i64 {
        let bits = 8 * b.len() as u32;
        let raw = self.uint(b);
        ((raw << (64 - bits)) as i64) >> (64 - bits)
    }

    /// The Orientation entry of the first IFD, decoded as Pillow stores it.
    fn orientation(&self, data: &[u8]) -> Option<Value> {
        let (typ, bytes) = self.lookup(data, ORIENTATION_TAG)?;
        Some(self.first_value(typ, bytes))
    }

    /// `ImageFileDirectory_v2.load` up to the first entry for `wanted`:
    /// its type and value bytes, or `None` when the tag is absent or the
    /// directory ends (Pillow stops at the first short read) before it.
    fn lookup<'a>(&self, data: &'a [u8], wanted: u16) -> Option<(u16, &'a [u8])> {
        let offset = self.first_offset;
        let (count_len, entry_len, inline_len) = if self.big { (8, 20, 8) } else { (2, 12, 4) };
        let limit = data.len() as u64;
        let mut pos = usize::try_from(offset).ok()?;
        let tag_count = self.uint(data.get(pos..pos.checked_add(count_len)?)?);
        pos += count_len;
        let mut total_size: u64 = 0;
        for _ in 0..tag_count {
            let entry = data.get(pos..pos.checked_add(entry_len)?)?;
            pos += entry_len;
            let tag = self.uint(&entry[0..2]) as u16;
            let typ = self.uint(&entry[2..4]) as u16;
            let (count, field) = if self.big {
                (self.uint(&entry[4..12]), &entry[12..20])
            } else {
                (self.uint(&entry[4..8]), &entry[8..12])
            };
            let Some(unit) = unit_size(typ) else {
                continue;
            };
            let size = count.checked_mul(unit)?;
            let value_bytes = if size > inline_len {
                let at = self.uint(field);
                if at >= 1 << 63 {
                    continue;
                }
                total_size = total_size.saturating_add(size);
                if total_size > limit {
                    continue;
                }
                // A read past the end raises OSError, which ends the IFD.
                let start = usize::try_from(at).ok()?;
                let end = start.checked_add(usize::try_from(size).ok()?)?;
                data.get(start..end)?
            } else {
                &field[..size as usize]
            };
            if value_bytes.is_empty() {
                continue;
            }
            if tag == wanted {
                return Some((typ, value_bytes));
            }
        }
        None
    }

    /// Calls `visit(tag, type, inline field)` for each entry of the first
    /// IFD whose type is known, as far as the entries' bytes go.
    fn walk(&self, data: &[u8], mut visit: impl FnMut(u16, u16, &[u8])) -> Option<()> {
        let (count_len, entry_len) = if self.big { (8, 20) } else { (2, 12) };
        let mut pos = usize::try_from(self.first_offset).ok()?;
        let tag_count = self.uint(data.get(pos..pos.checked_add(count_len)?)?);
        pos += count_len;
        for _ in 0..tag_count {
            let entry = data.get(pos..pos.checked_add(entry_len)?)?;
            pos += entry_len;
            let typ = self.uint(&entry[2..4]) as u16;
            let field = if self.big {
                &entry[12..20]
            } else {
                &entry[8..12]
            };
            // `first_value` reads up to 8 bytes: known types only, and the
            // 8-byte ones only where inline (BigTIFF).
            if unit_size(typ).is_some_and(|u| u <= field.len() as u64) {
                visit(self.uint(&entry[0..2]) as u16, typ, field);
            }
        }
        Some(())
    }

    /// The value `_setitem` stores for a tag whose spec'd length is 1.
    fn first_value(&self, typ: u16, b: &[u8]) -> Value {
        match typ {
            3 => Value::Int(self.uint(&b[..2]) as i64),
            4 | 13 => Value::Int(self.uint(&b[..4]) as i64),
            16 => {
                let v = self.uint(&b[..8]);
                i64::try_from(v).map_or(Value::Other, Value::Int)
            }
            6 => Value::Int(self.sint(&b[..1])),
            8 => Value::Int(self.sint(&b[..2])),
            9 => Value::Int(self.sint(&b[..4])),
            11 => Value::Float(f64::from(f32::from_bits(self.uint(&b[..4]) as u32))),
            12 => Value::Float(f64::from_bits(self.uint(&b[..8]))),
            5 => Value::Rational(self.uint(&b[..4]) as i64, self.uint(&b[4..8]) as i64),
            10 => Value::Rational(self.sint(&b[..4]), self.sint(&b[4..8])),
            _ => Value::Other,
        }
    }
}

/// Bytes per value of the TIFF types Pillow's `_load_dispatch` knows.
fn unit_size(typ: u16) -> Option<u64> {
    Some(match typ {
        1 | 2 | 6 | 7 => 1,
        3 | 8 => 2,
        4 | 9 | 11 | 13 => 4,
        5 | 10 | 12 | 16 => 8,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little- or big-endian TIFF with one IFD of `(tag, type, count, field)`.
    pub(crate) fn tiff(big_endian: bool, entries: &[(u16, u16, u32, [u8; 4])]) -> Vec<u8> {
        let u16b = |v: u16| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let u32b = |v: u32| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut out = if big_endian {
            b"MM\0*".to_vec()
        } else {
            b"II*\0".to_vec()
        };
        out.extend(u32b(8));
        out.extend(u16b(entries.len() as u16));
        for (tag, typ, count, field) in entries {
            out.extend(u16b(*tag));
            out.extend(u16b(*typ));
            out.extend(u32b(*count));
            out.extend(field);
        }
        out.extend(u32b(0));
        out
    }

    fn meta(exif: Vec<u8>) -> Metadata {
        Metadata {
            exif: Some(ExifSource::Bytes(exif)),
            ..Metadata::default()
        }
    }

    #[test]
    fn short_orientation_in_both_byte_orders() {
        for code in 1..=8u16 {
            let le = tiff(false, &[(274, 3, 1, [code as u8, 0, 0, 0])]);
            assert_eq!(meta(le).orientation(&[]).unwrap(), code as u8);
            let be = tiff(true, &[(274, 3, 1, [0, code as u8, 0, 0])]);
            let mut prefixed = b"Exif\0\0".to_vec();
            prefixed.extend(be);
            assert_eq!(meta(prefixed).orientation(&[]).unwrap(), code as u8);
        }
    }

    #[test]
    fn pillow_value_rules() {
        // LONG, count 2 -> first value; unknown type 99 skipped, later entry used.
        let t = tiff(
            false,
            &[(274, 99, 1, [6, 0, 0, 0]), (274, 3, 2, [6, 0, 3, 0])],
        );
        assert_eq!(meta(t).orientation(&[]).unwrap(), 6);
        // First duplicate wins.
        let t = tiff(
            false,
            &[(274, 3, 1, [3, 0, 0, 0]), (274, 3, 1, [6, 0, 0, 0])],
        );
        assert_eq!(meta(t).orientation(&[]).unwrap(), 3);
        // ASCII "6" is present but matches nothing, and blocks the XMP fallback.
        let t = tiff(false, &[(274, 2, 2, *b"6\0\0\0")]);
        let mut m = meta(t);
        m.xmp = Some(b"<x tiff:Orientation=\"8\"/>".to_vec());
        assert_eq!(m.orientation(&[]).unwrap(), 1);
        // FLOAT 6.0 matches 6.
        let t = tiff(false, &[(274, 11, 1, 6.0f32.to_le_bytes())]);
        assert_eq!(meta(t).orientation(&[]).unwrap(), 6);
        // Count 0 -> no data -> absent, so XMP decides.
        let t = tiff(false, &[(274, 3, 0, [6, 0, 0, 0])]);
        let mut m = meta(t);
        m.xmp = Some(b"<tiff:Orientation>5</tiff:Orientation>".to_vec());
        assert_eq!(m.orientation(&[]).unwrap(), 5);
    }

    #[test]
    fn rational_orientation_read_out_of_line() {
        let mut t = tiff(false, &[(274, 5, 1, 26u32.to_le_bytes())]);
        assert_eq!(t.len(), 26);
        t.extend(12u32.to_le_bytes());
        t.extend(2u32.to_le_bytes());
        assert_eq!(meta(t).orientation(&[]).unwrap(), 6);
    }

    #[test]
    fn truncated_directory_keeps_earlier_tags_only() {
        let mut t = tiff(false, &[(1, 3, 1, [0; 4]), (274, 3, 1, [8, 0, 0, 0])]);
        t.truncate(8 + 2 + 12 + 5);
        assert_eq!(meta(t).orientation(&[]).unwrap(), 1);
    }

    #[test]
    fn bad_headers_error_unless_swallowed() {
        for bad in [
            b"Exif\0\0JUNKJUNK".to_vec(),
            b"II*\0\x08".to_vec(),
            b"II+\0\x08\0\0\0".to_vec(),
        ] {
            let mut m = meta(bad);
            assert!(m.orientation(&[]).is_err());
            m.swallow_exif_errors = true;
            m.xmp = Some(b"tiff:Orientation=\"6\"".to_vec());
            assert_eq!(m.orientation(&[]).unwrap(), 1);
        }
        assert_eq!(meta(b"Exif\0\0".to_vec()).orientation(&[]).unwrap(), 1);
    }

    #[test]
    fn xmp_text_wins_over_packet_unless_empty() {
        let m = Metadata {
            xmp_text: Some(b"tiff:Orientation=\"3\"".to_vec()),
            xmp: Some(b"tiff:Orientation=\"6\"".to_vec()),
            ..Metadata::default()
        };
        assert_eq!(m.orientation(&[]).unwrap(), 3);
        let m = Metadata {
            xmp_text: Some(Vec::new()),
            xmp: Some(b"tiff:Orientation=\"6\"".to_vec()),
            ..Metadata::default()
        };
        assert_eq!(m.orientation(&[]).unwrap(), 6);
    }

    #[test]
    fn directories_end_with_their_bytes_whatever_they_declare() {
        // 65535 entries declared, two present: the walk stops after them.
        let mut t = tiff(
            false,
            &[(259, 3, 1, [7, 0, 0, 0]), (259, 3, 1, [1, 0, 0, 0])],
        );
        t[8..10].copy_from_slice(&u16::MAX.to_le_bytes());
        assert_eq!(tiff_compressions(&t), [7, 1]);
        assert_eq!(meta(t).orientation(&[]).unwrap(), 1);
        // A BigTIFF declaring 2^64 - 1 entries, none present.
        let mut big = b"II+\0\x08\0\0\0".to_vec();
        big.extend(16u64.to_le_bytes());
        big.extend(u64::MAX.to_le_bytes());
        assert_eq!(tiff_compressions(&big), Vec::<i64>::new());
        assert_eq!(tiff_xmp(&big), None);
    }

    #[test]
    fn raw_profile_hex_is_parsed() {
        let exif = tiff(false, &[(274, 3, 1, [7, 0, 0, 0])]);
        let hex: String = exif.iter().map(|b| format!("{b:02x}")).collect();
        let text = format!("\nexif\n{:8}\n{}\n{}\n", exif.len(), &hex[..20], &hex[20..]);
        let m = Metadata {
            exif: Some(ExifSource::RawProfileHex(text.into_bytes())),
            ..Metadata::default()
        };
        assert_eq!(m.orientation(&[]).unwrap(), 7);
        let bad = Metadata {
            exif: Some(ExifSource::RawProfileHex(b"\nexif\n 4\nzz".to_vec())),
            ..Metadata::default()
        };
        assert!(bad.orientation(&[]).is_err());
    }
}
