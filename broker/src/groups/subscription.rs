//! The topics a consumer-protocol member subscribes to, read from its JoinGroup metadata
//! (Kafka's `ConsumerProtocolSubscription`; every version starts with the v0 fields:
//! `version: i16`, `topics: [string]`). Used to refuse OffsetDelete for topics a live group
//! still consumes.

/// The subscribed topics, or `None` when the metadata is not a consumer subscription.
pub fn topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut at = 2usize; // version
    let take = |at: &mut usize, n: usize| -> Option<&[u8]> {
        let bytes = metadata.get(*at..at.checked_add(n)?)?;
        *at += n;
        Some(bytes)
    };
    let count = i32::from_be_bytes(take(&mut at, 4)?.try_into().ok()?);
    let count = usize::try_from(count).ok()?;
    let mut out = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let len = i16::from_be_bytes(take(&mut at, 2)?.try_into().ok()?);
        let name = take(&mut at, usize::try_from(len).ok()?)?;
        out.push(String::from_utf8(name.to_vec()).ok()?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscription(version: i16, topics: &[&str], tail: &[u8]) -> Vec<u8> {
        let mut b = version.to_be_bytes().to_vec();
        b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
        for t in topics {
            b.extend_from_slice(&(t.len() as i16).to_be_bytes());
            b.extend_from_slice(t.as_bytes());
        }
        b.extend_from_slice(tail);
        b
    }

    #[test]
    fn reads_the_topics_of_any_version() {
        let v0 = subscription(0, &["a", "orders"], &[]);
        assert_eq!(topics(&v0), Some(vec!["a".into(), "orders".into()]));
        // v1+ add user data, owned partitions, ... after the topics.
        let v3 = subscription(3, &["x"], &[0, 0, 0, 4, 1, 2, 3, 4, 0xff]);
        assert_eq!(topics(&v3), Some(vec!["x".into()]));
    }

    #[test]
    fn rejects_what_is_not_a_subscription() {
        for bad in [
            &b""[..],
            b"\0",
            b"\0\0\0\0\0\x01",
            b"\0\0\0\0\0\x01\0\x05ab",
            b"\0\0\xff\xff\xff\xff",
        ] {
            assert_eq!(topics(bad), None, "{bad:?}");
        }
    }
}
