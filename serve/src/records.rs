//! The binary records botc keeps of each port's items (sessions, transcript entries,
//! replies, outbox items, history, quarantined sessions), each led by a version byte, on
//! top of the varints and panic-free reader of `botc_runtime::codec`. The embedded store
//! keeps them in redb; a Redis adapter keeps the same bytes, so both read each other's.

use super::Event;
use super::ports::*;
use super::transcript::{Entry, From};
use botc_runtime::codec::{DecodeError, Reader, put_bytes, put_var};

/// Version 2 added the user's name, version 3 when the conversation was last touched,
/// version 4 the partition `applied` counts in (before, the conversation's only partition).
pub fn encode_stored(s: &Stored) -> Vec<u8> {
    let mut out = vec![4u8];
    put_var(&mut out, u64::from(s.partition));
    put_var(&mut out, s.applied);
    put_var(&mut out, s.version);
    put_bytes(&mut out, s.name.as_bytes());
    put_var(&mut out, s.touched_at);
    out.extend_from_slice(&s.session);
    out
}

/// `partition`: the conversation's partition, for records from before version 4.
pub fn decode_stored(bytes: &[u8], partition: u32) -> Result<Stored, DecodeError> {
    let mut r = Reader::new(bytes);
    let v = r.u8()?;
    if !(1..=4).contains(&v) {
        return Err(DecodeError::Version(v));
    }
    let partition = if v >= 4 {
        u32::try_from(r.var()?).map_err(|_| DecodeError::Malformed("partition out of range"))?
    } else {
        partition
    };
    let applied = r.var()?;
    let version = r.var()?;
    let name = if v >= 2 { r.string()? } else { String::new() };
    let touched_at = if v >= 3 { r.var()? } else { 0 };
    let rest = bytes.len() - r.remaining();
    Ok(Stored { session: bytes[rest..].to_vec(), version, applied, partition, name, touched_at })
}

pub fn encode_quarantined(q: &Quarantined) -> Vec<u8> {
    let mut out = vec![1u8];
    put_bytes(&mut out, q.key.as_bytes());
    put_bytes(&mut out, q.error.as_bytes());
    put_var(&mut out, q.at);
    put_bytes(&mut out, &q.raw);
    out
}

pub fn decode_quarantined(bytes: &[u8]) -> Result<Quarantined, DecodeError> {
    let mut r = Reader::new(bytes);
    let v = r.u8()?;
    if v != 1 {
        return Err(DecodeError::Version(v));
    }
    let (key, error, at) = (r.string()?, r.string()?, r.var()?);
    let raw = r.bytes()?.to_vec();
    Ok(Quarantined { key, error, at, raw })
}

/// Version 2 adds the entry's time at the end; version 1 entries read as time 0 (unknown).
pub fn encode_entry(e: &Entry) -> Vec<u8> {
    let mut out = vec![2u8];
    put_bytes(&mut out, e.id.as_bytes());
    out.push(match e.from {
        From::User => 0,
        From::Bot => 1,
        From::System => 2,
    });
    put_bytes(&mut out, e.text.as_bytes());
    put_buttons(&mut out, &e.buttons);
    put_var(&mut out, e.at);
    out
}

pub fn decode_entry(seq: u64, bytes: &[u8]) -> Result<Entry, DecodeError> {
    let mut r = Reader::new(bytes);
    let v = r.u8()?;
    if v != 1 && v != 2 {
        return Err(DecodeError::Version(v));
    }
    let id = r.string()?;
    let from = match r.u8()? {
        0 => From::User,
        1 => From::Bot,
        2 => From::System,
        _ => return Err(DecodeError::Malformed("unknown sender")),
    };
    let text = r.string()?;
    let buttons = read_buttons(&mut r)?;
    let at = if v >= 2 { r.var()? } else { 0 };
    Ok(Entry { seq, id, from, text, buttons, at })
}

/// An entry's id, read without decoding the rest (the transcript's dedupe reads many).
pub fn entry_id(bytes: &[u8]) -> Result<&[u8], DecodeError> {
    let mut r = Reader::new(bytes);
    let v = r.u8()?;
    if v != 1 && v != 2 {
        return Err(DecodeError::Version(v));
    }
    r.bytes()
}

pub fn put_buttons(out: &mut Vec<u8>, buttons: &[botc_runtime::vm::Button]) {
    put_var(out, buttons.len() as u64);
    for b in buttons {
        put_bytes(out, b.label.as_bytes());
        for part in [&b.value, &b.url] {
            match part {
                Some(s) => {
                    out.push(1);
                    put_bytes(out, s.as_bytes());
                }
                None => out.push(0),
            }
        }
    }
}

pub fn read_buttons(r: &mut Reader<'_>) -> Result<Vec<botc_runtime::vm::Button>, DecodeError> {
    let n = r.count()?;
    let mut buttons = Vec::with_capacity(n);
    for _ in 0..n {
        let label = r.string()?;
        let mut opt = || -> Result<Option<String>, DecodeError> {
            match r.u8()? {
                0 => Ok(None),
                _ => Ok(Some(r.string()?)),
            }
        };
        let value = opt()?;
        let url = opt()?;
        buttons.push(botc_runtime::vm::Button { label, value, url });
    }
    Ok(buttons)
}

pub fn encode_record(h: &HistoryRecord) -> Vec<u8> {
    let mut out = vec![1u8];
    for s in [&h.id, &h.bot, &h.conversation, &h.user_id, &h.platform, &h.kind, &h.text] {
        put_bytes(&mut out, s.as_bytes());
    }
    out.push(match h.direction {
        Direction::In => 0,
        Direction::Out => 1,
    });
    put_buttons(&mut out, &h.buttons);
    put_var(&mut out, h.at);
    out
}

pub fn decode_record(bytes: &[u8]) -> Result<HistoryRecord, DecodeError> {
    let mut r = Reader::new(bytes);
    let v = r.u8()?;
    if v != 1 {
        return Err(DecodeError::Version(v));
    }
    let (id, bot, conversation, user_id) = (r.string()?, r.string()?, r.string()?, r.string()?);
    let (platform, kind, text) = (r.string()?, r.string()?, r.string()?);
    let direction = match r.u8()? {
        0 => Direction::In,
        1 => Direction::Out,
        _ => return Err(DecodeError::Malformed("unknown direction")),
    };
    let buttons = read_buttons(&mut r)?;
    let at = r.var()?;
    Ok(HistoryRecord { id, bot, conversation, user_id, platform, direction, kind, text, buttons, at })
}

pub fn encode_reply(r: &QueuedReply) -> Vec<u8> {
    let mut out = vec![1u8];
    for s in [&r.id, &r.bot, &r.key, &r.reply.reply_to, &r.reply.text] {
        put_bytes(&mut out, s.as_bytes());
    }
    put_buttons(&mut out, &r.reply.buttons);
    out.push(u8::from(r.reply.first));
    out
}

pub fn decode_reply(bytes: &[u8]) -> Result<QueuedReply, DecodeError> {
    let mut r = Reader::new(bytes);
    let v = r.u8()?;
    if v != 1 {
        return Err(DecodeError::Version(v));
    }
    let (id, bot, key, reply_to, text) = (r.string()?, r.string()?, r.string()?, r.string()?, r.string()?);
    let buttons = read_buttons(&mut r)?;
    let first = r.u8()? != 0;
    Ok(QueuedReply { id, bot, key, reply: botc_runtime::platforms::Reply { reply_to, text, buttons, first } })
}

pub fn encode_item(item: &OutboxItem) -> Vec<u8> {
    let mut out = vec![1u8];
    put_bytes(&mut out, item.id.as_bytes());
    put_bytes(&mut out, item.request.method.as_bytes());
    put_bytes(&mut out, item.request.url.as_bytes());
    put_var(&mut out, item.request.headers.len() as u64);
    for (k, v) in &item.request.headers {
        put_bytes(&mut out, k.as_bytes());
        put_bytes(&mut out, v.as_bytes());
    }
    match &item.request.body {
        Some(b) => {
            out.push(1);
            put_bytes(&mut out, b.as_bytes());
        }
        None => out.push(0),
    }
    put_bytes(&mut out, &item.result.encode());
    out
}

pub fn decode_item(bytes: &[u8]) -> Result<OutboxItem, DecodeError> {
    let mut r = Reader::new(bytes);
    let v = r.u8()?;
    if v != 1 {
        return Err(DecodeError::Version(v));
    }
    let id = r.string()?;
    let method = r.string()?;
    let url = r.string()?;
    let n = r.count()?;
    let mut headers = Vec::with_capacity(n);
    for _ in 0..n {
        headers.push((r.string()?, r.string()?));
    }
    let body = match r.u8()? {
        0 => None,
        _ => Some(r.string()?),
    };
    let result = Event::decode(r.bytes()?)?;
    Ok(OutboxItem { id, request: HttpRequest { method, url, headers, body }, result })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_and_items_round_trip() {
        let e = Entry {
            seq: 7,
            id: "e:1".into(),
            from: From::Bot,
            text: "hi".into(),
            buttons: vec![botc_runtime::vm::Button { label: "A".into(), value: Some("a".into()), url: None }],
            at: 1_700_000_000,
        };
        assert_eq!(decode_entry(7, &encode_entry(&e)), Ok(e.clone()));
        // A version 1 entry (written before entries had a time) still reads, time unknown.
        let mut v1 = encode_entry(&Entry { at: 0, ..e.clone() });
        v1[0] = 1;
        v1.pop();
        assert_eq!(decode_entry(7, &v1), Ok(Entry { at: 0, ..e.clone() }));
        assert_eq!(entry_id(&v1), Ok(&b"e:1"[..]));
        let s = Stored {
            session: vec![1, 2, 3],
            version: 9,
            applied: 12,
            partition: 3,
            name: "Ada".into(),
            touched_at: 1_700_000_000,
        };
        assert_eq!(decode_stored(&encode_stored(&s), 0), Ok(s));
        let h = HistoryRecord {
            id: "e:1:0".into(),
            bot: "b".into(),
            conversation: "c".into(),
            user_id: "u".into(),
            platform: "web".into(),
            direction: Direction::Out,
            kind: "message".into(),
            text: "hi".into(),
            buttons: e.buttons.clone(),
            at: 1_700_000_000,
        };
        assert_eq!(decode_record(&encode_record(&h)), Ok(h));
    }
}
