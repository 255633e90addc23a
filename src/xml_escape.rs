//! Control characters in XML answers.
//!
//! XML 1.0 cannot carry U+0001–U+001F (tab, LF and CR aside) as text, and s3s refuses to
//! send an answer that holds one: a key such as `a\x01b`, which S3 accepts, would make
//! every listing page holding it a 500. S3 sends such characters as character references
//! (`&#x1;`), and `encoding-type=url` percent-encodes them instead. A handler that echoes a
//! key or a client string into XML passes it through [`Escapes::text`], which writes each
//! such character as a marker unique to the request; the response path then turns the
//! markers of the serialized body into references ([`Escapes::finish`]).
//!
//! Invariant: the marker is random per request and made only of characters the XML
//! serializer leaves as they are, so no stored key can forge one and every marker in a
//! body is one this request's handler wrote.

use std::sync::{Arc, OnceLock};

use http::Response;
use s3s::Body;

/// Per-request escaping of control characters; cheap to clone (handlers get it through
/// the request's extensions).
#[derive(Clone, Default)]
pub struct Escapes(Arc<OnceLock<String>>);

impl Escapes {
    /// The escapes of a request, if the response path will finish them.
    pub fn of(extensions: &http::Extensions) -> Option<&Escapes> {
        extensions.get::<Escapes>()
    }

    /// `s` escaped for the XML answer of the request `extensions` belong to (unchanged if
    /// nothing will finish the escapes, which the gateway's response path always does).
    pub fn text_in(extensions: &http::Extensions, s: String) -> String {
        match Escapes::of(extensions) {
            Some(e) => e.text(s),
            None => s,
        }
    }

    /// `s` with every control character XML cannot hold replaced by the request's marker.
    pub fn text(&self, s: String) -> String {
        if !s.chars().any(needs_reference) {
            return s;
        }
        let marker = self
            .0
            .get_or_init(|| format!("S3QCTL{}X", uuid::Uuid::new_v4().simple()));
        let mut out = String::with_capacity(s.len() + 40);
        for c in s.chars() {
            if needs_reference(c) {
                out.push_str(marker);
                out.push_str(&format!("{:02X}", c as u32));
            } else {
                out.push(c);
            }
        }
        out
    }

    /// Turns the markers in a serialized XML body into character references.
    pub fn finish(&self, resp: &mut Response<Body>) {
        let Some(marker) = self.0.get() else { return };
        let Some(bytes) = resp.body().bytes() else {
            return;
        };
        let Ok(text) = std::str::from_utf8(&bytes) else {
            return;
        };
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find(marker.as_str()) {
            out.push_str(&rest[..at]);
            let after = &rest[at + marker.len()..];
            // The marker is always followed by two hex digits (see `text`).
            let (hex, tail) = after.split_at(2.min(after.len()));
            out.push_str("&#x");
            out.push_str(hex);
            out.push(';');
            rest = tail;
        }
        out.push_str(rest);
        resp.headers_mut().remove(http::header::CONTENT_LENGTH);
        *resp.body_mut() = Body::from(out);
    }
}

/// Below U+0020 only tab and LF survive as text: XML parsers turn a raw CR into LF, so a
/// CR is sent as a reference too.
fn needs_reference(c: char) -> bool {
    (c as u32) < 0x20 && !matches!(c, '\t' | '\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_references_and_the_rest_is_untouched() {
        let escapes = Escapes::default();
        assert_eq!(escapes.text("plain/key.txt".into()), "plain/key.txt");
        let marked = escapes.text("a\u{1}b\u{1f}c\td\re".into());
        assert!(!marked.contains('\u{1}'));
        let mut resp = Response::new(Body::from(format!("<Key>{marked}</Key>")));
        escapes.finish(&mut resp);
        let body = resp.body().bytes().unwrap();
        assert_eq!(&body[..], b"<Key>a&#x01;b&#x1F;c\td&#x0D;e</Key>");
    }

    #[test]
    fn a_body_without_markers_is_left_alone() {
        let escapes = Escapes::default();
        let mut resp = Response::new(Body::from("<Key>S3QCTL0X01</Key>".to_owned()));
        escapes.finish(&mut resp);
        assert_eq!(&resp.body().bytes().unwrap()[..], b"<Key>S3QCTL0X01</Key>");
    }
}
