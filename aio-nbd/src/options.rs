//! Option haggling: the server's answer to each option of the fixed
//! newstyle handshake, and what the connection does next.

use crate::proto::{self, ClientOption, OptionHeader, base_allocation, info, opt, rep};
use crate::shared::{BASE_ALLOCATION_ID, MAX_BLOCK, MIN_BLOCK, PREFERRED_BLOCK, Shared};

/// What the client and server agreed on.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Negotiated {
    /// No 124 zero bytes after `NBD_OPT_EXPORT_NAME`.
    pub(crate) no_zeroes: bool,
    /// Structured replies.
    pub(crate) structured: bool,
    /// `base:allocation` selected for `NBD_CMD_BLOCK_STATUS`.
    pub(crate) base_allocation: bool,
}

/// Where the connection goes after an option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// More options.
    Options,
    /// The transmission phase.
    Transmission,
    /// Send what is queued, then close.
    Close,
}

/// Answers one option, appending the replies to `out`.
pub(crate) fn answer(
    shared: &Shared,
    negotiated: &mut Negotiated,
    header: OptionHeader,
    data: &[u8],
    out: &mut Vec<u8>,
) -> Next {
    let option = header.option;
    let parsed = match proto::parse_option(option, data) {
        Ok(parsed) => parsed,
        // NBD_OPT_EXPORT_NAME cannot be answered with an error.
        Err(_) if option == opt::EXPORT_NAME => return Next::Close,
        Err(e) => {
            proto::option_reply(out, option, rep::ERR_INVALID, e.to_string().as_bytes());
            return Next::Options;
        }
    };
    if shared.stopping.get() && matches!(parsed, ClientOption::ExportName(_)) {
        return Next::Close;
    }
    if shared.stopping.get() && parsed != ClientOption::Abort {
        proto::option_reply(out, option, rep::ERR_SHUTDOWN, b"server shutting down");
        return Next::Options;
    }
    match parsed {
        ClientOption::ExportName(name) => export_name(shared, negotiated, &name, out),
        ClientOption::Abort => {
            proto::option_reply(out, option, rep::ACK, &[]);
            Next::Close
        }
        ClientOption::List => {
            proto::option_reply(out, option, rep::SERVER, &proto::rep_server(&shared.name));
            proto::option_reply(out, option, rep::ACK, &[]);
            Next::Options
        }
        ClientOption::Info { go, name, requests } => {
            info_or_go(shared, option, go, &name, &requests, out)
        }
        ClientOption::StructuredReply => {
            negotiated.structured = true;
            proto::option_reply(out, option, rep::ACK, &[]);
            Next::Options
        }
        ClientOption::MetaContext {
            set,
            export,
            queries,
        } => {
            meta_context(shared, negotiated, option, set, &export, &queries, out);
            Next::Options
        }
        ClientOption::Unsupported(_) => {
            proto::option_reply(out, option, rep::ERR_UNSUP, b"option not supported");
            Next::Options
        }
    }
}

fn export_name(shared: &Shared, negotiated: &Negotiated, name: &str, out: &mut Vec<u8>) -> Next {
    if !shared.names_export(name) {
        return Next::Close;
    }
    out.extend_from_slice(&proto::export_name_reply(
        shared.export.size(),
        shared.transmission_flags(),
        negotiated.no_zeroes,
    ));
    Next::Transmission
}

fn info_or_go(
    shared: &Shared,
    option: u32,
    go: bool,
    name: &str,
    requests: &[u16],
    out: &mut Vec<u8>,
) -> Next {
    if !shared.names_export(name) {
        proto::option_reply(out, option, rep::ERR_UNKNOWN, b"no such export");
        return Next::Options;
    }
    let export = proto::info_export(shared.export.size(), shared.transmission_flags());
    proto::option_reply(out, option, rep::INFO, &export);
    if requests.contains(&info::NAME) {
        proto::option_reply(out, option, rep::INFO, &proto::info_name(&shared.name));
    }
    // Always sent: the limits hold whether or not the client asked.
    let sizes = proto::info_block_size(MIN_BLOCK, PREFERRED_BLOCK, MAX_BLOCK);
    proto::option_reply(out, option, rep::INFO, &sizes);
    proto::option_reply(out, option, rep::ACK, &[]);
    if go {
        Next::Transmission
    } else {
        Next::Options
    }
}

fn meta_context(
    shared: &Shared,
    negotiated: &mut Negotiated,
    option: u32,
    set: bool,
    export: &str,
    queries: &[String],
    out: &mut Vec<u8>,
) {
    if !negotiated.structured {
        proto::option_reply(out, option, rep::ERR_INVALID, b"structured replies first");
        return;
    }
    if !shared.names_export(export) {
        proto::option_reply(out, option, rep::ERR_UNKNOWN, b"no such export");
        return;
    }
    // An empty list asks for every context when listing, none when setting.
    let matches = if queries.is_empty() {
        !set
    } else {
        queries
            .iter()
            .any(|q| q == base_allocation::NAME || q == "base:")
    };
    if set {
        negotiated.base_allocation = matches;
    }
    if matches {
        let id = if set { BASE_ALLOCATION_ID } else { 0 };
        let data = proto::rep_meta_context(id, base_allocation::NAME);
        proto::option_reply(out, option, rep::META_CONTEXT, &data);
    }
    proto::option_reply(out, option, rep::ACK, &[]);
}
