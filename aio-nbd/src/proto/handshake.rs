//! The fixed newstyle handshake: the greeting, the client's flags, options
//! and their replies.

use super::{
    GREETING_LEN, IHAVEOPT, NBD_MAGIC, OPTION_HEADER_LEN, OPTION_REPLY_MAGIC, ProtoError, Reader,
    client_flags, handshake_flags, info, opt, to_string,
};

/// The server's greeting: `NBDMAGIC`, `IHAVEOPT`, and the handshake flags
/// (fixed newstyle, no zeroes).
pub fn greeting() -> [u8; GREETING_LEN] {
    let mut out = [0; GREETING_LEN];
    out[..8].copy_from_slice(&NBD_MAGIC.to_be_bytes());
    out[8..16].copy_from_slice(&IHAVEOPT.to_be_bytes());
    let flags = handshake_flags::FIXED_NEWSTYLE | handshake_flags::NO_ZEROES;
    out[16..].copy_from_slice(&flags.to_be_bytes());
    out
}

/// Parses the client's flags; unknown ones are an error (the server must
/// then close the connection).
pub fn parse_client_flags(data: &[u8]) -> Result<u32, ProtoError> {
    let flags = Reader::new("client flags", data).u32()?;
    let known = client_flags::FIXED_NEWSTYLE | client_flags::NO_ZEROES;
    if flags & !known != 0 {
        return Err(ProtoError::UnknownClientFlags(flags));
    }
    Ok(flags)
}

/// The header that precedes every option's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptionHeader {
    /// The option number.
    pub option: u32,
    /// How many bytes of data follow.
    pub length: u32,
}

impl OptionHeader {
    /// Parses an option header.
    pub fn parse(data: &[u8]) -> Result<OptionHeader, ProtoError> {
        let mut r = Reader::new("option header", data);
        let magic = r.u64()?;
        if magic != IHAVEOPT {
            return Err(ProtoError::BadMagic {
                what: "option header",
                found: magic,
            });
        }
        Ok(OptionHeader {
            option: r.u32()?,
            length: r.u32()?,
        })
    }

    /// Encodes an option header (what a client sends; for tests and tools).
    pub fn encode(&self) -> [u8; OPTION_HEADER_LEN] {
        let mut out = [0; OPTION_HEADER_LEN];
        out[..8].copy_from_slice(&IHAVEOPT.to_be_bytes());
        out[8..12].copy_from_slice(&self.option.to_be_bytes());
        out[12..].copy_from_slice(&self.length.to_be_bytes());
        out
    }
}

/// An option the server understands, parsed from its data.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientOption {
    /// `NBD_OPT_EXPORT_NAME`: the export's name.
    ExportName(String),
    /// `NBD_OPT_ABORT`.
    Abort,
    /// `NBD_OPT_LIST`.
    List,
    /// `NBD_OPT_INFO` or (`go`) `NBD_OPT_GO`.
    Info {
        /// Whether transmission starts after the reply.
        go: bool,
        /// The export's name.
        name: String,
        /// The information types asked for.
        requests: Vec<u16>,
    },
    /// `NBD_OPT_STRUCTURED_REPLY`.
    StructuredReply,
    /// `NBD_OPT_LIST_META_CONTEXT` or (`set`) `NBD_OPT_SET_META_CONTEXT`.
    MetaContext {
        /// Whether this selects (set) or only lists.
        set: bool,
        /// The export's name.
        export: String,
        /// The queries.
        queries: Vec<String>,
    },
    /// An option this server does not serve.
    Unsupported(u32),
}

/// Parses an option's data. Errors mean the data is malformed for its
/// option (`NBD_REP_ERR_INVALID`).
pub fn parse_option(option: u32, data: &[u8]) -> Result<ClientOption, ProtoError> {
    let mut r = Reader::new("option data", data);
    let parsed = match option {
        opt::EXPORT_NAME => ClientOption::ExportName(to_string(r.rest(), "export name")?),
        opt::ABORT => ClientOption::Abort,
        opt::LIST if r.is_empty() => ClientOption::List,
        opt::LIST => return Err(ProtoError::BadOptionData("NBD_OPT_LIST takes no data")),
        opt::STRUCTURED_REPLY if r.is_empty() => ClientOption::StructuredReply,
        opt::STRUCTURED_REPLY => {
            return Err(ProtoError::BadOptionData(
                "NBD_OPT_STRUCTURED_REPLY takes no data",
            ));
        }
        opt::INFO | opt::GO => {
            let name = r.string32("export name")?;
            let count = r.u16()?;
            let requests = (0..count).map(|_| r.u16()).collect::<Result<_, _>>()?;
            ClientOption::Info {
                go: option == opt::GO,
                name,
                requests,
            }
        }
        opt::LIST_META_CONTEXT | opt::SET_META_CONTEXT => {
            let export = r.string32("export name")?;
            let count = r.u32()?;
            // Each query takes at least its 4-byte length: a count that
            // the data cannot hold is malformed, not a reason to allocate.
            if count as usize > data.len() / 4 {
                return Err(ProtoError::BadOptionData("more queries than data"));
            }
            let queries = (0..count)
                .map(|_| r.string32("query"))
                .collect::<Result<_, _>>()?;
            ClientOption::MetaContext {
                set: option == opt::SET_META_CONTEXT,
                export,
                queries,
            }
        }
        other => return Ok(ClientOption::Unsupported(other)),
    };
    if !r.is_empty() {
        return Err(ProtoError::BadOptionData("trailing bytes"));
    }
    Ok(parsed)
}

/// Appends an option reply (header and data) to `out`.
pub fn option_reply(out: &mut Vec<u8>, option: u32, reply_type: u32, data: &[u8]) {
    out.extend_from_slice(&OPTION_REPLY_MAGIC.to_be_bytes());
    out.extend_from_slice(&option.to_be_bytes());
    out.extend_from_slice(&reply_type.to_be_bytes());
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
}

/// The data of an `NBD_REP_SERVER` reply: one export's name.
pub fn rep_server(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + name.len());
    out.extend_from_slice(&(name.len() as u32).to_be_bytes());
    out.extend_from_slice(name.as_bytes());
    out
}

/// The data of an `NBD_REP_INFO` reply of type `NBD_INFO_EXPORT`.
pub fn info_export(size: u64, flags: u16) -> [u8; 12] {
    let mut out = [0; 12];
    out[..2].copy_from_slice(&info::EXPORT.to_be_bytes());
    out[2..10].copy_from_slice(&size.to_be_bytes());
    out[10..].copy_from_slice(&flags.to_be_bytes());
    out
}

/// The data of an `NBD_REP_INFO` reply of type `NBD_INFO_NAME`.
pub fn info_name(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + name.len());
    out.extend_from_slice(&info::NAME.to_be_bytes());
    out.extend_from_slice(name.as_bytes());
    out
}

/// The data of an `NBD_REP_INFO` reply of type `NBD_INFO_BLOCK_SIZE`.
pub fn info_block_size(min: u32, preferred: u32, max: u32) -> [u8; 14] {
    let mut out = [0; 14];
    out[..2].copy_from_slice(&info::BLOCK_SIZE.to_be_bytes());
    out[2..6].copy_from_slice(&min.to_be_bytes());
    out[6..10].copy_from_slice(&preferred.to_be_bytes());
    out[10..].copy_from_slice(&max.to_be_bytes());
    out
}

/// The data of an `NBD_REP_META_CONTEXT` reply.
pub fn rep_meta_context(id: u32, name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + name.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(name.as_bytes());
    out
}

/// The reply to `NBD_OPT_EXPORT_NAME`: size, transmission flags, and 124
/// zero bytes unless the client asked for none.
pub fn export_name_reply(size: u64, flags: u16, no_zeroes: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + 124);
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    if !no_zeroes {
        out.resize(10 + 124, 0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta_context_data(export: &str, queries: &[&str]) -> Vec<u8> {
        let mut data = rep_server(export);
        data.extend_from_slice(&(queries.len() as u32).to_be_bytes());
        for q in queries {
            data.extend_from_slice(&rep_server(q));
        }
        data
    }

    #[test]
    fn greeting_is_magic_then_fixed_newstyle_and_no_zeroes() {
        let g = greeting();
        assert_eq!(&g[..8], b"NBDMAGIC");
        assert_eq!(&g[8..16], b"IHAVEOPT");
        assert_eq!(u16::from_be_bytes([g[16], g[17]]), 0b11);
    }

    #[test]
    fn client_flags_refuse_unknown_bits_and_short_input() {
        assert_eq!(parse_client_flags(&[0, 0, 0, 3]), Ok(3));
        assert_eq!(
            parse_client_flags(&[0, 0, 0, 4]),
            Err(ProtoError::UnknownClientFlags(4))
        );
        assert!(matches!(
            parse_client_flags(&[0, 0]),
            Err(ProtoError::Truncated {
                need: 4,
                have: 2,
                ..
            })
        ));
    }

    #[test]
    fn option_header_round_trips_and_checks_magic() {
        let h = OptionHeader {
            option: opt::GO,
            length: 7,
        };
        assert_eq!(OptionHeader::parse(&h.encode()), Ok(h));
        let mut bad = h.encode();
        bad[0] ^= 1;
        assert!(matches!(
            OptionHeader::parse(&bad),
            Err(ProtoError::BadMagic { .. })
        ));
        assert!(matches!(
            OptionHeader::parse(&bad[..5]),
            Err(ProtoError::Truncated { .. })
        ));
    }

    #[test]
    fn go_and_info_parse_name_and_requests() {
        let mut data = rep_server("disk");
        data.extend_from_slice(&2u16.to_be_bytes());
        data.extend_from_slice(&info::BLOCK_SIZE.to_be_bytes());
        data.extend_from_slice(&info::NAME.to_be_bytes());
        assert_eq!(
            parse_option(opt::GO, &data),
            Ok(ClientOption::Info {
                go: true,
                name: "disk".into(),
                requests: vec![info::BLOCK_SIZE, info::NAME],
            })
        );
        // A count of requests the data does not hold.
        data.truncate(data.len() - 1);
        assert!(matches!(
            parse_option(opt::INFO, &data),
            Err(ProtoError::Truncated { .. })
        ));
    }

    #[test]
    fn meta_context_parses_queries_and_refuses_absurd_counts() {
        let data = meta_context_data("", &["base:allocation"]);
        assert_eq!(
            parse_option(opt::SET_META_CONTEXT, &data),
            Ok(ClientOption::MetaContext {
                set: true,
                export: String::new(),
                queries: vec!["base:allocation".into()],
            })
        );
        let mut huge = rep_server("");
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse_option(opt::LIST_META_CONTEXT, &huge).is_err());
    }

    #[test]
    fn options_with_data_they_should_not_have_are_invalid() {
        assert!(parse_option(opt::LIST, b"x").is_err());
        assert!(parse_option(opt::STRUCTURED_REPLY, b"x").is_err());
        assert_eq!(
            parse_option(opt::STARTTLS, b""),
            Ok(ClientOption::Unsupported(opt::STARTTLS))
        );
        assert!(parse_option(opt::EXPORT_NAME, b"a\0b").is_err());
        assert!(parse_option(opt::EXPORT_NAME, &[0xff]).is_err());
    }
}
