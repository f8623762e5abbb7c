//! Content sniffing: which decoder a file goes to.
//!
//! Like `PIL.Image.open`, the decision is made from the leading bytes, never
//! from the file name, so a PNG named `.jpg` decodes and a text file named
//! `.jpg` is reported as what it is. Formats that Pillow or other tools know
//! but this crate does not decode are still named, so the error tells the
//! user what they uploaded.

/// The formats this crate decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Png,
    Jpeg,
    Gif,
    WebP,
    Bmp,
    Tiff,
}

/// Result of looking at the leading bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sniffed {
    Supported(Format),
    /// Recognised but not decoded here; the name goes into the error.
    Unsupported(&'static str),
    Unknown,
}

/// TIFF byte-order marks, including the malformed orders Pillow tolerates.
pub(crate) const TIFF_PREFIXES: [&[u8]; 6] = [
    b"MM\x00\x2a",
    b"II\x2a\x00",
    b"MM\x2a\x00",
    b"II\x00\x2a",
    b"MM\x00\x2b",
    b"II\x2b\x00",
];

pub(crate) fn sniff(bytes: &[u8]) -> Sniffed {
    use Format::*;
    let starts = |prefix: &[u8]| bytes.starts_with(prefix);
    // Same acceptance tests as the Pillow plugins' `_accept`.
    if starts(b"\x89PNG\r\n\x1a\n") {
        return Sniffed::Supported(Png);
    }
    if starts(b"\xff\xd8\xff") {
        return Sniffed::Supported(Jpeg);
    }
    if starts(b"GIF87a") || starts(b"GIF89a") {
        return Sniffed::Supported(Gif);
    }
    if starts(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") && bytes.get(12..15) == Some(b"VP8") {
        return Sniffed::Supported(WebP);
    }
    if starts(b"BM") {
        return Sniffed::Supported(Bmp);
    }
    if TIFF_PREFIXES.iter().any(|p| starts(p)) {
        return Sniffed::Supported(Tiff);
    }
    Sniffed::from_other(bytes)
}

impl Sniffed {
    /// Names well-known formats that are not decoded here.
    fn from_other(bytes: &[u8]) -> Sniffed {
        let starts = |prefix: &[u8]| bytes.starts_with(prefix);
        if bytes.get(4..8) == Some(b"ftyp") {
            let brand = bytes.get(8..12).unwrap_or_default();
            return Sniffed::Unsupported(match brand {
                b"avif" | b"avis" => "AVIF",
                b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" | b"mif1" | b"msf1" => {
                    "HEIC/HEIF"
                }
                b"crx " => "Canon CR3 raw",
                _ => "ISO media (MP4/MOV/HEIF family)",
            });
        }
        let table: [(&[u8], &'static str); 12] = [
            (b"%PDF", "PDF"),
            (b"\xff\x0a", "JPEG XL"),
            (b"\x00\x00\x00\x0cJXL ", "JPEG XL"),
            (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
            (b"\xff\x4f\xff\x51", "JPEG 2000"),
            (b"8BPS", "Photoshop PSD"),
            (b"\x00\x00\x01\x00", "ICO"),
            (b"qoif", "QOI"),
            (b"\x76\x2f\x31\x01", "OpenEXR"),
            (b"#?RADIANCE", "Radiance HDR"),
            (b"DDS ", "DDS"),
            (b"PK\x03\x04", "ZIP archive"),
        ];
        if let Some((_, name)) = table.iter().find(|(magic, _)| starts(magic)) {
            return Sniffed::Unsupported(name);
        }
        if starts(b"P") && matches!(bytes.get(1), Some(b'1'..=b'7')) {
            return Sniffed::Unsupported("PNM/PPM");
        }
        let head = &bytes[..bytes.len().min(512)];
        let text = String::from_utf8_lossy(head).to_ascii_lowercase();
        let text = text.trim_start_matches('\u{feff}').trim_start();
        if text.contains("<svg") {
            return Sniffed::Unsupported("SVG");
        }
        if text.starts_with("<!doctype html") || text.starts_with("<html") {
            return Sniffed::Unsupported("HTML");
        }
        if text.starts_with("<?xml") {
            return Sniffed::Unsupported("XML");
        }
        Sniffed::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_supported_magics() {
        assert_eq!(
            sniff(b"\x89PNG\r\n\x1a\nrest"),
            Sniffed::Supported(Format::Png)
        );
        assert_eq!(sniff(b"\xff\xd8\xff\xe0"), Sniffed::Supported(Format::Jpeg));
        assert_eq!(sniff(b"GIF89a..."), Sniffed::Supported(Format::Gif));
        assert_eq!(
            sniff(b"RIFF\0\0\0\0WEBPVP8L"),
            Sniffed::Supported(Format::WebP)
        );
        assert_eq!(sniff(b"RIFF\0\0\0\0WAVEfmt "), Sniffed::Unknown);
        assert_eq!(sniff(b"BM\0\0"), Sniffed::Supported(Format::Bmp));
        assert_eq!(sniff(b"II*\0\x08\0\0\0"), Sniffed::Supported(Format::Tiff));
    }

    #[test]
    fn names_common_unsupported_formats() {
        assert_eq!(
            sniff(b"\0\0\0\x18ftypheic\0\0\0\0"),
            Sniffed::Unsupported("HEIC/HEIF")
        );
        assert_eq!(sniff(b"\0\0\0\x1cftypavif"), Sniffed::Unsupported("AVIF"));
        assert_eq!(sniff(b"%PDF-1.7\n"), Sniffed::Unsupported("PDF"));
        assert_eq!(
            sniff(b"<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"/>"),
            Sniffed::Unsupported("SVG")
        );
        assert_eq!(sniff(b"hello, I am not an image"), Sniffed::Unknown);
        assert_eq!(sniff(b"\x01"), Sniffed::Unknown);
    }
}
