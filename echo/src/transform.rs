//! The reply transform every server shares.
//!
//! The echo reply is the input, byte for byte, or with `--upper` the input with its ASCII letters
//! upper-cased. Working byte by byte is what lets each server apply it to whatever a single read
//! returned: a line split across two reads comes out the same as if it had arrived whole, and
//! non-ASCII bytes (including the bytes of multi-byte UTF-8 characters) pass through untouched.

/// Turns the bytes just read into the bytes to send back, in place.
pub fn apply(buf: &mut [u8], upper: bool) {
    if upper {
        buf.make_ascii_uppercase();
    }
}

#[cfg(test)]
mod tests {
    use super::apply;

    #[test]
    fn identity_without_upper() {
        let mut buf = *b"Hello, \xc3\xa9t\xc3\xa9!\n";
        apply(&mut buf, false);
        assert_eq!(&buf, b"Hello, \xc3\xa9t\xc3\xa9!\n");
    }

    #[test]
    fn upper_touches_only_ascii_letters() {
        let mut buf = *b"Hello, \xc3\xa9t\xc3\xa9 42!\n";
        apply(&mut buf, true);
        assert_eq!(&buf, b"HELLO, \xc3\xa9T\xc3\xa9 42!\n");
    }

    #[test]
    fn split_reads_give_the_same_reply() {
        let mut whole = *b"split me";
        apply(&mut whole, true);
        let (mut a, mut b) = (*b"spl", *b"it me");
        apply(&mut a, true);
        apply(&mut b, true);
        assert_eq!([&a[..], &b[..]].concat(), whole);
    }
}
