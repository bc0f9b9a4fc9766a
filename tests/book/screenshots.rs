//! Screenshots of the book (scripts/book-screenshots) are not blank.

use super::*;

// ---- screenshots --------------------------------------------------------------------

/// A decoded PNG as width, height and RGB pixels: the `png` crate checks the
/// chunks' CRCs and handles every colour type, bit depth, filter and interlacing
/// a browser may write; palettes and grey are expanded and alpha dropped.
pub(crate) fn decode_png(bytes: &[u8]) -> Result<(usize, usize, Vec<[u8; 3]>), String> {
    let mut dec = png::Decoder::new(bytes);
    dec.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = dec.read_info().map_err(|e| format!("not a PNG: {e}"))?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| format!("bad image data: {e}"))?;
    let (w, h) = (info.width as usize, info.height as usize);
    let channels = info.color_type.samples();
    let rgb = |p: &[u8]| match channels {
        1 | 2 => [p[0]; 3],
        _ => [p[0], p[1], p[2]],
    };
    let px = buf[..info.buffer_size()].chunks_exact(channels).map(rgb).collect();
    Ok((w, h, px))
}

/// Why a screenshot looks blank, or `Ok` with a one-line description.
pub(crate) fn judge_screenshot(w: usize, h: usize, px: &[[u8; 3]]) -> Result<String, String> {
    let mut counts: BTreeMap<[u8; 3], usize> = BTreeMap::new();
    for p in px {
        *counts.entry(*p).or_default() += 1;
    }
    let (bg, bg_n) = counts
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(c, n)| (*c, *n))
        .unwrap_or(([0; 3], 0));
    let total = w * h;
    let content = 1.0 - bg_n as f64 / total as f64;
    let luma = |p: &[u8; 3]| (p[0] as u32 * 299 + p[1] as u32 * 587 + p[2] as u32 * 114) / 1000;
    let bg_l = luma(&bg) as i64;
    // "Ink": pixels far from the background's brightness (text, rules, code).
    let ink = |x0: usize, x1: usize| {
        let mut n = 0;
        for y in 0..h {
            for x in x0..x1.min(w) {
                if (luma(&px[y * w + x]) as i64 - bg_l).abs() > 80 {
                    n += 1;
                }
            }
        }
        n as f64 / ((x1.min(w) - x0) * h) as f64
    };
    let sidebar = ink(0, w / 5);
    let main = ink(w / 3, w);
    let desc = format!(
        "{w}x{h}, {} colours, {:.1}% non-background, ink: sidebar {:.2}%, main {:.2}%",
        counts.len(),
        content * 100.0,
        sidebar * 100.0,
        main * 100.0
    );
    if counts.len() < 16 || content < 0.02 || sidebar < 0.002 || main < 0.005 {
        return Err(format!("looks blank: {desc}"));
    }
    Ok(desc)
}

#[test]
fn screenshots_of_the_book_are_not_blank() {
    let Ok(dir) = std::env::var("WB_BOOK_SCREENSHOTS") else {
        eprintln!("skipped: WB_BOOK_SCREENSHOTS is not set (scripts/book-screenshots sets it)");
        return;
    };
    let mut shots: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .collect();
    shots.sort();
    assert!(!shots.is_empty(), "no screenshots in {dir}");
    let mut problems = Vec::new();
    for s in &shots {
        let bytes = std::fs::read(s).unwrap();
        match decode_png(&bytes).and_then(|(w, h, px)| judge_screenshot(w, h, &px)) {
            Ok(desc) => eprintln!("{}: {desc}", s.display()),
            Err(e) => problems.push(format!("{}: {e}", s.display())),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// An RGB PNG of `px`, for testing the decoder and the judge.
pub(crate) fn encode_png(w: usize, h: usize, px: &[[u8; 3]]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w as u32, h as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().unwrap();
    writer.write_image_data(&px.concat()).unwrap();
    writer.finish().unwrap();
    out
}

#[test]
fn blank_screenshots_are_caught() {
    let (w, h) = (200, 100);
    let white = vec![[255u8; 3]; w * h];
    let (dw, dh, px) = decode_png(&encode_png(w, h, &white)).unwrap();
    assert_eq!((dw, dh, px.len()), (w, h, w * h));
    assert!(decode_png(b"<html>").is_err_and(|e| e.starts_with("not a PNG")));
    let mut corrupt = encode_png(w, h, &white);
    let n = corrupt.len();
    corrupt[n - 20] ^= 0xff; // in the image data: its CRC no longer matches
    assert!(decode_png(&corrupt).is_err(), "a damaged PNG is refused");
    assert!(judge_screenshot(w, h, &px).is_err(), "a white page is blank");
    // "Text" in both the sidebar and the main column, in a few shades.
    let mut page = white.clone();
    for y in (10..90).step_by(4) {
        for x in (5..35).chain(80..190) {
            let shade = ((x * 7 + y * 3) % 40) as u8;
            page[y * w + x] = [shade, shade, shade + 20];
        }
    }
    let (_, _, px) = decode_png(&encode_png(w, h, &page)).unwrap();
    assert_eq!(px, page, "decoder round trip");
    assert!(judge_screenshot(w, h, &px).is_ok(), "{:?}", judge_screenshot(w, h, &px));
    // The same page without its sidebar (the table of contents did not render).
    let mut no_sidebar = page.clone();
    for y in 0..h {
        for x in 0..w / 5 {
            no_sidebar[y * w + x] = [255; 3];
        }
    }
    assert!(judge_screenshot(w, h, &no_sidebar).is_err());
}
