//! The built HTML book: no broken relative link or `#fragment`.

use super::*;

// ---- the built book ------------------------------------------------------------------

/// The values of the attributes `attrs` (e.g. ` href="`) in an HTML text.
fn attr_values(html: &str, attrs: [&str; 2]) -> Vec<String> {
    let mut out = Vec::new();
    for attr in attrs {
        let mut rest = html;
        while let Some(i) = rest.find(attr) {
            let after = &rest[i + attr.len()..];
            let Some(j) = after.find('"') else { break };
            out.push(after[..j].to_string());
            rest = &after[j..];
        }
    }
    out
}

/// The values of `href="…"` and `src="…"` attributes in an HTML text.
pub(crate) fn html_links(html: &str) -> Vec<String> {
    attr_values(html, [" href=\"", " src=\""])
}

/// The `id="…"` and `name="…"` targets of `#fragment`s in an HTML text.
pub(crate) fn html_ids(html: &str) -> BTreeSet<String> {
    attr_values(html, [" id=\"", " name=\""]).into_iter().collect()
}

pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn html_entities(s: &str) -> String {
    s.replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}

/// Broken relative links and fragments in the built book at `dir`.
pub(crate) fn broken_links(dir: &Path) -> (usize, Vec<String>) {
    let mut pages: BTreeMap<PathBuf, String> = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "html") {
                pages.insert(p.clone(), read(&p));
            }
        }
    }
    let mut ids: BTreeMap<PathBuf, BTreeSet<String>> = BTreeMap::new();
    let mut checked = 0;
    let mut broken = Vec::new();
    for (page, html) in &pages {
        // 404.html is served from the site root (`<base href="/">`): its links resolve from `dir`.
        let base = if html.contains("<base href=\"/\"") {
            dir.to_path_buf()
        } else {
            page.parent().unwrap().to_path_buf()
        };
        for link in html_links(html) {
            let link = html_entities(&link);
            if link.is_empty()
                || link.starts_with("//")
                || link.contains("://")
                || ["mailto:", "javascript:", "data:", "tel:"]
                    .iter()
                    .any(|p| link.starts_with(p))
            {
                continue;
            }
            checked += 1;
            let (path_part, frag) = match link.split_once('#') {
                Some((p, f)) => (p, Some(f)),
                None => (link.as_str(), None),
            };
            let path_part = path_part.split('?').next().unwrap_or("");
            let target = if path_part.is_empty() {
                page.clone()
            } else if let Some(abs) = path_part.strip_prefix('/') {
                // Site-absolute: the book is served from its root.
                dir.join(percent_decode(abs))
            } else {
                base.join(percent_decode(path_part))
            };
            let target = if target.is_dir() {
                target.join("index.html")
            } else {
                target
            };
            if !target.exists() {
                broken.push(format!("{}: {link} (no file {})", rel(page), rel(&target)));
                continue;
            }
            if let Some(f) = frag.filter(|f| !f.is_empty()) {
                if target.extension().is_some_and(|x| x == "html") {
                    let set = ids.entry(target.clone()).or_insert_with(|| html_ids(&read(&target)));
                    if !set.contains(&percent_decode(f)) {
                        broken.push(format!("{}: {link} (no id \"{f}\" in {})", rel(page), rel(&target)));
                    }
                }
            }
        }
        if html.contains("{{#") {
            broken.push(format!(
                "{}: an unprocessed mdBook directive ({{{{#…}}}}) is in the page",
                rel(page)
            ));
        }
    }
    (checked, broken)
}

#[test]
fn built_book_has_no_broken_links() {
    let dir = root().join("book/book");
    if !dir.join("index.html").exists() {
        assert!(
            !env_is("WB_BOOK_BUILT"),
            "WB_BOOK_BUILT=1 but {} has no index.html",
            rel(&dir)
        );
        eprintln!("skipped: the book is not built (scripts/book builds it, then runs this test)");
        return;
    }
    let (checked, broken) = broken_links(&dir);
    assert!(checked > 50, "only {checked} links checked in {}", rel(&dir));
    assert!(
        broken.is_empty(),
        "broken links in the built book:\n{}",
        broken.join("\n")
    );
    let summary = read(&src().join("SUMMARY.md"));
    for t in summary_targets(&summary) {
        let html = dir.join(t.replace(".md", ".html"));
        assert!(html.exists(), "{t} is in SUMMARY.md but {} was not built", rel(&html));
    }
}

#[test]
fn link_checker_finds_broken_links() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("a.html"), r##"<a href="b.html#there">ok</a> <a href="b.html#nowhere">bad fragment</a> <img src="missing.png"> <a href="https://example.org/x">external</a> <a href="#top">self</a><h1 id="top">A</h1> <a href="c%20d.html">space</a>"##).unwrap();
    std::fs::write(d.path().join("b.html"), r#"<h2 id="there">B</h2>"#).unwrap();
    std::fs::write(d.path().join("c d.html"), "").unwrap();
    let (checked, broken) = broken_links(d.path());
    assert_eq!(checked, 5);
    assert_eq!(broken.len(), 2, "{broken:?}");
    assert!(
        broken[0].contains("b.html#nowhere") && broken[1].contains("missing.png"),
        "{broken:?}"
    );
}
