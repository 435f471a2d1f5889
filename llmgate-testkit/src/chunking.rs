//! Splitting a body into the network frames a hostile upstream (or proxy) might send.

use bytes::Bytes;

/// How a reply body is cut into frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Chunking {
    /// One frame with the whole body.
    #[default]
    Whole,
    /// Frames of at most this many bytes (0 is treated as 1).
    Bytes(usize),
    /// A frame boundary inside every multi-byte UTF-8 character (before each continuation byte).
    SplitInsideUtf8,
    /// A frame boundary between every `\r` and the `\n` that follows it.
    SplitCrLf,
    /// A frame boundary after every occurrence of this delimiter: `"\n\n"` sends one SSE
    /// event per frame, `"\n"` one NDJSON line per frame.
    AfterEach(&'static str),
}

/// Cut `body` into frames according to `plan`. Frames are never empty and concatenate back to
/// `body`.
pub fn split_frames(body: &Bytes, plan: Chunking) -> Vec<Bytes> {
    if body.is_empty() {
        return Vec::new();
    }
    let boundaries: Vec<usize> = match plan {
        Chunking::Whole => Vec::new(),
        Chunking::Bytes(size) => (size.max(1)..body.len()).step_by(size.max(1)).collect(),
        Chunking::SplitInsideUtf8 => (1..body.len())
            .filter(|&i| is_utf8_continuation(body[i]))
            .collect(),
        Chunking::SplitCrLf => (1..body.len())
            .filter(|&i| body[i - 1] == b'\r' && body[i] == b'\n')
            .collect(),
        Chunking::AfterEach(delimiter) => after_each(body, delimiter.as_bytes()),
    };
    let mut frames = Vec::with_capacity(boundaries.len() + 1);
    let mut start = 0;
    for end in boundaries.into_iter().chain(std::iter::once(body.len())) {
        if end > start {
            frames.push(body.slice(start..end));
            start = end;
        }
    }
    frames
}

/// The offsets just past each non-overlapping occurrence of `delimiter`.
fn after_each(body: &[u8], delimiter: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    if delimiter.is_empty() {
        return ends;
    }
    let mut at = 0;
    while at + delimiter.len() <= body.len() {
        if &body[at..at + delimiter.len()] == delimiter {
            at += delimiter.len();
            ends.push(at);
        } else {
            at += 1;
        }
    }
    ends
}

fn is_utf8_continuation(byte: u8) -> bool {
    byte & 0b1100_0000 == 0b1000_0000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(frames: &[Bytes]) -> Vec<u8> {
        frames.iter().flat_map(|f| f.iter().copied()).collect()
    }

    #[test]
    fn whole_is_one_frame_and_empty_body_has_none() {
        let body = Bytes::from_static(b"hello");
        assert_eq!(split_frames(&body, Chunking::Whole), vec![body.clone()]);
        assert!(split_frames(&Bytes::new(), Chunking::Whole).is_empty());
    }

    #[test]
    fn bytes_plan_cuts_fixed_sizes_with_short_tail() {
        let body = Bytes::from_static(b"abcdefghij");
        let frames = split_frames(&body, Chunking::Bytes(3));
        let sizes: Vec<usize> = frames.iter().map(Bytes::len).collect();
        assert_eq!(sizes, vec![3, 3, 3, 1]);
        assert_eq!(joined(&frames), body.to_vec());
        assert_eq!(split_frames(&body, Chunking::Bytes(0)).len(), 10);
        assert_eq!(split_frames(&body, Chunking::Bytes(1)).len(), 10);
        assert_eq!(split_frames(&body, Chunking::Bytes(100)).len(), 1);
    }

    #[test]
    fn utf8_plan_leaves_no_frame_valid_around_multibyte_chars() {
        let text = "aé日🙂z";
        let body = Bytes::from(text);
        let frames = split_frames(&body, Chunking::SplitInsideUtf8);
        assert_eq!(joined(&frames), text.as_bytes());
        // é (2 bytes) gets 1 boundary inside, 日 (3) gets 2, 🙂 (4) gets 3.
        assert_eq!(frames.len(), 1 + 1 + 2 + 3);
        // Every multi-byte character is split: no frame but the ASCII ones is valid UTF-8 alone.
        let whole_chars = frames
            .iter()
            .filter(|f| std::str::from_utf8(f).is_ok_and(|s| s.chars().any(|c| c.len_utf8() > 1)))
            .count();
        assert_eq!(whole_chars, 0);
    }

    #[test]
    fn after_each_plan_ends_a_frame_after_every_delimiter() {
        let body = Bytes::from_static(b"data: 1\n\ndata: 2\n\ntail");
        let frames = split_frames(&body, Chunking::AfterEach("\n\n"));
        assert_eq!(
            frames,
            vec![
                Bytes::from_static(b"data: 1\n\n"),
                Bytes::from_static(b"data: 2\n\n"),
                Bytes::from_static(b"tail"),
            ]
        );
        let lines = split_frames(&Bytes::from_static(b"a\nb\n"), Chunking::AfterEach("\n"));
        assert_eq!(lines.len(), 2);
        assert_eq!(split_frames(&body, Chunking::AfterEach("")).len(), 1);
    }

    #[test]
    fn crlf_plan_separates_every_cr_from_its_lf() {
        let body = Bytes::from_static(b"data: 1\r\n\r\ndata: 2\r\n\r\n");
        let frames = split_frames(&body, Chunking::SplitCrLf);
        assert_eq!(joined(&frames), body.to_vec());
        assert_eq!(frames.len(), 5);
        for frame in &frames[1..] {
            assert_eq!(frame[0], b'\n');
        }
        for frame in &frames[..frames.len() - 1] {
            assert_eq!(frame[frame.len() - 1], b'\r');
        }
    }
}
