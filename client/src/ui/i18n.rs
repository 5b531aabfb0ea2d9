//! Every visible word of the app, in English and Simplified Chinese.
//!
//! The rest of the UI never writes a visible string literal: it asks [`Lang::texts`] for a [`Texts`] table and
//! reads a field. Keeping all words in one place has three uses: switching language is swapping one table
//! (instantly, without a restart); a missing translation is a compile error, because both tables fill every field
//! of the same struct; and a translator reads one file.
//!
//! Sentences that contain values (a user name, a byte count) are functions in the table rather than format
//! strings, because word order differs between the languages: "delivered to bob" is "已送达 bob" but
//! "3 unread" is "3 条未读".
//!
//! ## Which language at start
//!
//! On Linux and other Unix systems the user's language is in the locale environment variables. POSIX gives them a
//! precedence: `LC_ALL` overrides everything, then the category's own variable (`LC_MESSAGES` for the language of
//! messages), then `LANG`. The first one that is set and not empty decides; a value starting with `zh`
//! (`zh_CN.UTF-8`, `zh_SG`, `zh`) picks Chinese, anything else English. [`Lang::from_env`] applies that rule; the
//! student can then switch in the app, and the choice is remembered in the settings file.

use chatlab_proto::chat::NameError;
use chatlab_proto::control::{ErrorCode, Transport};
use serde::{Deserialize, Serialize};

use super::backend::{Problem, TransportReason};

/// The interface language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Lang {
    /// English.
    #[default]
    En,
    /// Simplified Chinese (简体中文).
    Zh,
}

/// The locale variables in POSIX precedence order for the language of messages.
pub const LOCALE_VARIABLES: [&str; 3] = ["LC_ALL", "LC_MESSAGES", "LANG"];

impl Lang {
    /// Every language, in the order the language menu shows them.
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Zh];

    /// The language the locale asks for, reading variables with `get` (see the module docs for the rule).
    pub fn from_locale(get: impl Fn(&str) -> Option<String>) -> Lang {
        let decisive = LOCALE_VARIABLES.iter().filter_map(|name| get(name)).find(|value| !value.is_empty());
        match decisive {
            Some(value) if value.to_ascii_lowercase().starts_with("zh") => Lang::Zh,
            _ => Lang::En,
        }
    }

    /// The language of this process's locale environment.
    pub fn from_env() -> Lang {
        Lang::from_locale(|name| std::env::var(name).ok())
    }

    /// Reads `en` or `zh` (as in a `--lang` option).
    pub fn parse(code: &str) -> Option<Lang> {
        match code.to_ascii_lowercase().as_str() {
            "en" => Some(Lang::En),
            "zh" => Some(Lang::Zh),
            _ => None,
        }
    }

    /// The language's name written in itself, for the language menu.
    pub fn native_name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Zh => "简体中文",
        }
    }

    /// The table of every visible word in this language.
    pub fn texts(self) -> &'static Texts {
        match self {
            Lang::En => &EN,
            Lang::Zh => &ZH,
        }
    }
}

/// Every visible word of the app in one language. See the module docs.
pub struct Texts {
    // Sign-in screen.
    pub app_title: &'static str,
    pub sign_in_title: &'static str,
    pub server_address: &'static str,
    pub username: &'static str,
    pub password: &'static str,
    pub log_in: &'static str,
    pub register: &'static str,
    pub connecting: &'static str,
    pub language: &'static str,
    pub host_title: &'static str,
    pub host_explain: &'static str,
    pub host_port: &'static str,
    pub host_start: &'static str,
    pub host_starting: &'static str,
    pub host_share: &'static str,
    pub err_server_empty: &'static str,
    pub err_password_empty: &'static str,
    pub password_too_long: fn(len: usize, max: usize) -> String,
    pub name_error: fn(&NameError) -> String,
    pub first_contact: fn(server: &str, fingerprint: &str) -> String,
    pub key_changed: fn(server: &str, pinned: &str, offered: &str) -> String,
    pub ok: &'static str,

    // Names and marks that happen to be the same in both languages; they live here so that no view writes
    // visible text of its own.
    pub udp: &'static str,
    pub tcp: &'static str,
    pub unit_ms: &'static str,
    /// `chrono` format of the time beside each message.
    pub time_format: &'static str,
    pub presence_dot: &'static str,
    pub mark_sending: &'static str,
    pub mark_accepted: &'static str,
    pub mark_delivered: &'static str,
    pub mark_failed: &'static str,

    // Chat screen.
    pub world_room: &'static str,
    pub online_users: &'static str,
    pub you: &'static str,
    pub offline: &'static str,
    pub unread: fn(usize) -> String,
    pub signed_in_as: fn(user: &str, server: &str) -> String,
    pub log_out: &'static str,
    pub statistics: &'static str,
    pub send: &'static str,
    pub compose_hint: &'static str,
    pub bytes_used: fn(used: usize, max: usize) -> String,
    pub too_long: fn(used: usize, max: usize) -> String,
    pub control_char: fn(char) -> String,
    pub state_sending: &'static str,
    pub state_waiting: &'static str,
    pub state_accepted: &'static str,
    pub state_delivered: fn(peers: &str) -> String,
    pub state_failed: fn(reason: &str) -> String,
    pub load_older: &'static str,
    pub loading: &'static str,
    pub beginning: &'static str,
    pub new_messages: &'static str,
    pub empty_conversation: &'static str,
    /// `chrono` format of the date separators.
    pub date_format: &'static str,
    pub transport_label: &'static str,
    pub transport_udp: &'static str,
    pub transport_tcp: &'static str,
    pub transport_changed: fn(Transport, &TransportReason) -> String,
    pub transport_switching: fn(Transport) -> String,
    pub transport_switch_failed: fn(Transport, reason: &str) -> String,
    pub connection_lost: fn(reason: &str) -> String,
    pub reconnected: &'static str,
    pub dismiss: &'static str,

    // Statistics panel.
    pub stats_title: &'static str,
    pub stats_empty: &'static str,
    pub counters: &'static str,
    pub figure: &'static str,
    pub row_packets_sent: &'static str,
    pub row_packets_received: &'static str,
    pub row_bytes_sent: &'static str,
    pub row_bytes_received: &'static str,
    pub row_useful_sent: &'static str,
    pub row_useful_received: &'static str,
    pub row_acks_sent: &'static str,
    pub row_acks_received: &'static str,
    pub row_retx_timeout: &'static str,
    pub row_retx_fast: &'static str,
    pub row_retx_spurious: &'static str,
    pub row_retx_kernel: &'static str,
    pub row_duplicates: &'static str,
    pub row_out_of_order: &'static str,
    pub row_rejected: &'static str,
    pub row_loss_rate: &'static str,
    pub row_srtt: &'static str,
    pub row_rttvar: &'static str,
    pub row_min_rtt: &'static str,
    pub row_rto: &'static str,
    pub row_in_flight: &'static str,
    pub row_latency_p50: &'static str,
    pub row_latency_p99: &'static str,
    pub row_hol_p99: &'static str,
    pub plot_rtt: &'static str,
    pub plot_rtt_sample: &'static str,
    pub plot_srtt: &'static str,
    pub plot_rto_band: &'static str,
    pub plot_packets: &'static str,
    pub plot_packets_sent: &'static str,
    pub plot_retransmissions: &'static str,
    pub plot_cdf: &'static str,
    pub axis_seconds: &'static str,
    pub axis_ms: &'static str,
    pub axis_per_second: &'static str,
    pub axis_fraction: &'static str,
    pub impair_title: &'static str,
    pub impair_explain: &'static str,
    pub impair_loss: &'static str,
    pub impair_burst: &'static str,
    pub impair_delay: &'static str,
    pub impair_jitter: &'static str,
    pub impair_duplicate: &'static str,
    pub impair_reorder: &'static str,
    pub impair_seed: &'static str,
    pub impair_outgoing: &'static str,
    pub impair_incoming: &'static str,
    pub impair_apply: &'static str,
    pub impair_reset: &'static str,
    pub impair_applied: &'static str,
    pub impair_invalid: fn(reason: &str) -> String,
    pub export_title: &'static str,
    pub export_path: &'static str,
    pub export_csv: &'static str,
    pub export_json: &'static str,
    pub export_saved: fn(path: &str) -> String,
    pub export_failed: fn(path: &str, reason: &str) -> String,

    /// A problem from the network side, as a sentence.
    pub problem: fn(&Problem) -> String,
}

/// English.
pub static EN: Texts = Texts {
    app_title: "chatlab",
    sign_in_title: "Sign in",
    server_address: "Server address (host:port)",
    username: "User name",
    password: "Password",
    log_in: "Log in",
    register: "Register",
    connecting: "Connecting…",
    language: "Language",
    host_title: "Host a room here",
    host_explain: "Runs a chatlab server on this computer. Classmates on the same network connect to one of the addresses shown.",
    host_port: "Port",
    host_start: "Start the room",
    host_starting: "Starting…",
    host_share: "The room is open. Students type one of these addresses:",
    err_server_empty: "Type the server address, for example 192.168.1.20:7878.",
    err_password_empty: "Type a password.",
    password_too_long: |len, max| format!("The password is {len} bytes long; at most {max} are allowed."),
    name_error: |err| match err {
        NameError::Empty => String::from("Type a user name."),
        NameError::TooLong { chars, max } => {
            format!("The user name has {chars} characters; at most {max} are allowed.")
        }
        NameError::BadChar { ch, .. } => {
            format!("A user name may only contain a-z, 0-9, '.', '_' and '-'; {ch:?} is not allowed.")
        }
        NameError::Reserved => String::from("\"world\" is the name of the world room; choose another user name."),
    },
    first_contact: |server, fingerprint| {
        format!(
            "First connection to {server}. Its key fingerprint is {fingerprint}. Compare it with the fingerprint the \
             server printed when it started: if they match, you are talking to the real server."
        )
    },
    key_changed: |server, pinned, offered| {
        format!(
            "Connection refused: the server at {server} presented a different key than at your first connection \
             (was {pinned}, now {offered}). Someone on the network may be pretending to be the server, or the \
             server was reinstalled. Ask the teacher; if they confirm the new key, delete the line for {server} \
             from the known_servers file and sign in again."
        )
    },
    ok: "OK",

    udp: "UDP",
    tcp: "TCP",
    unit_ms: "ms",
    time_format: "%H:%M",
    // Marks from GB2312, so that the embedded font draws them in both languages: ● presence, ○ sending,
    // √ stored by the server, √√ delivered, × refused.
    presence_dot: "●",
    mark_sending: "○",
    mark_accepted: "√",
    mark_delivered: "√√",
    mark_failed: "×",

    world_room: "World room",
    online_users: "Online users",
    you: "(you)",
    offline: "offline",
    unread: |n| format!("{n} unread"),
    signed_in_as: |user, server| format!("{user} on {server}"),
    log_out: "Log out",
    statistics: "Statistics",
    send: "Send",
    compose_hint: "Write a message. Enter sends, Shift+Enter starts a new line.",
    bytes_used: |used, max| format!("{used} / {max} bytes"),
    too_long: |used, max| format!("Too long to send: {used} bytes, at most {max}. Shorten the message."),
    control_char: |ch| {
        format!("The message contains the invisible control character U+{:04X}; remove it.", u32::from(ch))
    },
    state_sending: "sending",
    state_waiting: "waiting for the connection; sent as soon as it is back",
    state_accepted: "acknowledged by the server",
    state_delivered: |peers| format!("delivered to {peers}"),
    state_failed: |reason| format!("not sent: {reason}"),
    load_older: "Load older messages",
    loading: "Loading…",
    beginning: "This is the beginning of the conversation.",
    new_messages: "New messages ↓",
    empty_conversation: "No messages yet. Say hello!",
    date_format: "%A, %-d %B %Y",
    transport_label: "My messages travel over",
    transport_udp: "UDP with acks",
    transport_tcp: "TCP",
    transport_changed: |transport, reason| {
        let name = transport_name(transport);
        match reason {
            TransportReason::Requested | TransportReason::SessionStart => format!("Chat now travels over {name}."),
            TransportReason::UdpUnanswered { address } => {
                format!("No answer over UDP from {address} (a firewall may block UDP); chatting over TCP instead.")
            }
            TransportReason::UdpBroken { reason } => {
                format!("The server's UDP datagrams broke the protocol ({reason}); chatting over TCP instead.")
            }
        }
    },
    transport_switching: |transport| format!("Switching to {}…", transport_name(transport)),
    transport_switch_failed: |transport, reason| format!("Could not switch to {}: {reason}", transport_name(transport)),
    connection_lost: |reason| format!("Connection lost: {reason} Reconnecting…"),
    reconnected: "Reconnected. Messages you missed are being fetched.",
    dismiss: "Dismiss",

    stats_title: "Packet statistics",
    stats_empty: "Statistics appear a moment after you sign in.",
    counters: "Counters",
    figure: "Figure",
    row_packets_sent: "Packets sent",
    row_packets_received: "Packets received",
    row_bytes_sent: "Bytes sent",
    row_bytes_received: "Bytes received",
    row_useful_sent: "Useful bytes sent",
    row_useful_received: "Useful bytes received",
    row_acks_sent: "Acks sent",
    row_acks_received: "Acks received",
    row_retx_timeout: "Retransmissions (timeout)",
    row_retx_fast: "Retransmissions (fast)",
    row_retx_spurious: "Spurious retransmissions",
    row_retx_kernel: "Retransmissions (kernel)",
    row_duplicates: "Duplicates received",
    row_out_of_order: "Out of order",
    row_rejected: "Rejected (replay / auth / malformed)",
    row_loss_rate: "Estimated loss rate",
    row_srtt: "SRTT",
    row_rttvar: "RTTVAR",
    row_min_rtt: "Min RTT",
    row_rto: "RTO",
    row_in_flight: "Messages in flight",
    row_latency_p50: "Ack latency p50",
    row_latency_p99: "Ack latency p99",
    row_hol_p99: "Head-of-line wait p99",
    plot_rtt: "RTT samples with the SRTT–RTO band",
    plot_rtt_sample: "RTT sample",
    plot_srtt: "SRTT",
    plot_rto_band: "SRTT to RTO",
    plot_packets: "Packets and retransmissions per second",
    plot_packets_sent: "packets sent",
    plot_retransmissions: "retransmissions",
    plot_cdf: "Delivery latency CDF",
    axis_seconds: "time (s)",
    axis_ms: "ms",
    axis_per_second: "per second",
    axis_fraction: "fraction of messages",
    impair_title: "Impair my UDP traffic",
    impair_explain: "Only this app's datagrams are affected; the seed makes a run repeatable.",
    impair_loss: "Loss (%)",
    impair_burst: "Mean burst length (packets)",
    impair_delay: "Delay (ms)",
    impair_jitter: "Jitter (ms)",
    impair_duplicate: "Duplication (%)",
    impair_reorder: "Reordering (%)",
    impair_seed: "Seed",
    impair_outgoing: "outgoing",
    impair_incoming: "incoming",
    impair_apply: "Apply",
    impair_reset: "Reset",
    impair_applied: "Impairment applied.",
    impair_invalid: |reason| format!("These settings cannot be used: {reason}."),
    export_title: "Export statistics",
    export_path: "File",
    export_csv: "Save CSV",
    export_json: "Save JSON",
    export_saved: |path| format!("Saved to {path}."),
    export_failed: |path, reason| format!("Could not write {path}: {reason}."),

    problem: problem_en,
};

/// Simplified Chinese.
pub static ZH: Texts = Texts {
    app_title: "chatlab 聊天实验室",
    sign_in_title: "登录或注册",
    server_address: "服务器地址（主机:端口）",
    username: "用户名",
    password: "密码",
    log_in: "登录",
    register: "注册",
    connecting: "正在连接…",
    language: "语言",
    host_title: "在本机开设聊天室",
    host_explain: "在这台电脑上运行 chatlab 服务器。同一网络中的同学连接下面显示的任一地址即可。",
    host_port: "端口",
    host_start: "开设聊天室",
    host_starting: "正在启动…",
    host_share: "聊天室已开放。请同学们输入以下任一地址：",
    err_server_empty: "请输入服务器地址，例如 192.168.1.20:7878。",
    err_password_empty: "请输入密码。",
    password_too_long: |len, max| format!("密码长 {len} 字节，最多只能有 {max} 字节。"),
    name_error: |err| match err {
        NameError::Empty => String::from("请输入用户名。"),
        NameError::TooLong { chars, max } => format!("用户名有 {chars} 个字符，最多只能有 {max} 个。"),
        NameError::BadChar { ch, .. } => format!("用户名只能包含 a-z、0-9、“.”、“_”和“-”，不能使用 {ch:?}。"),
        NameError::Reserved => String::from("“world”是世界聊天室的名字，请换一个用户名。"),
    },
    first_contact: |server, fingerprint| {
        format!(
            "首次连接 {server}。服务器密钥指纹为 {fingerprint}。请与服务器启动时显示的指纹核对：两者一致，说明连接的是真正的服务器。"
        )
    },
    key_changed: |server, pinned, offered| {
        format!(
            "已拒绝连接：{server} 的服务器密钥与首次连接时不同（原为 {pinned}，现为 {offered}）。可能有人在网络中冒充服务器，\
             也可能服务器被重新安装过。请询问老师；确认新密钥无误后，从 known_servers 文件中删除 {server} 这一行，再重新登录。"
        )
    },
    ok: "知道了",

    udp: "UDP",
    tcp: "TCP",
    unit_ms: "ms",
    time_format: "%H:%M",
    // Marks from GB2312, so that the embedded font draws them in both languages: ● presence, ○ sending,
    // √ stored by the server, √√ delivered, × refused.
    presence_dot: "●",
    mark_sending: "○",
    mark_accepted: "√",
    mark_delivered: "√√",
    mark_failed: "×",

    world_room: "世界聊天室",
    online_users: "在线用户",
    you: "（我）",
    offline: "离线",
    unread: |n| format!("{n} 条未读"),
    signed_in_as: |user, server| format!("{user}，已连接 {server}"),
    log_out: "退出登录",
    statistics: "统计",
    send: "发送",
    compose_hint: "输入消息。按 Enter 发送，按 Shift+Enter 换行。",
    bytes_used: |used, max| format!("{used} / {max} 字节"),
    too_long: |used, max| format!("消息太长，无法发送：{used} 字节，最多 {max} 字节。请缩短消息。"),
    control_char: |ch| format!("消息中含有不可见的控制字符 U+{:04X}，请删除。", u32::from(ch)),
    state_sending: "发送中",
    state_waiting: "等待连接恢复，恢复后自动发送",
    state_accepted: "服务器已确认",
    state_delivered: |peers| format!("已送达 {peers}"),
    state_failed: |reason| format!("未发送：{reason}"),
    load_older: "加载更早的消息",
    loading: "正在加载…",
    beginning: "这是对话的开头。",
    new_messages: "有新消息 ↓",
    empty_conversation: "还没有消息，打个招呼吧！",
    date_format: "%Y年%-m月%-d日",
    transport_label: "我的消息通过",
    transport_udp: "UDP（带确认）",
    transport_tcp: "TCP",
    transport_changed: |transport, reason| {
        let name = transport_name(transport);
        match reason {
            TransportReason::Requested | TransportReason::SessionStart => format!("聊天消息现在通过 {name} 传输。"),
            TransportReason::UdpUnanswered { address } => {
                format!("{address} 没有通过 UDP 回应（可能被防火墙拦截），改用 TCP 聊天。")
            }
            TransportReason::UdpBroken { reason } => {
                format!("服务器的 UDP 数据报违反了协议（{reason}），改用 TCP 聊天。")
            }
        }
    },
    transport_switching: |transport| format!("正在切换到 {}…", transport_name(transport)),
    transport_switch_failed: |transport, reason| format!("无法切换到 {}：{reason}", transport_name(transport)),
    connection_lost: |reason| format!("连接已断开：{reason} 正在重新连接…"),
    reconnected: "已重新连接，正在获取错过的消息。",
    dismiss: "关闭",

    stats_title: "数据包统计",
    stats_empty: "登录后稍等片刻即可看到统计数据。",
    counters: "计数器",
    figure: "项目",
    row_packets_sent: "发送的数据包",
    row_packets_received: "收到的数据包",
    row_bytes_sent: "发送的字节",
    row_bytes_received: "收到的字节",
    row_useful_sent: "发送的有效字节",
    row_useful_received: "收到的有效字节",
    row_acks_sent: "发送的确认",
    row_acks_received: "收到的确认",
    row_retx_timeout: "重传（超时）",
    row_retx_fast: "重传（快速）",
    row_retx_spurious: "不必要的重传",
    row_retx_kernel: "重传（内核）",
    row_duplicates: "收到的重复包",
    row_out_of_order: "乱序到达",
    row_rejected: "拒收（重放 / 认证 / 格式）",
    row_loss_rate: "估计丢包率",
    row_srtt: "平滑 RTT（SRTT）",
    row_rttvar: "RTT 偏差（RTTVAR）",
    row_min_rtt: "最小 RTT",
    row_rto: "重传超时（RTO）",
    row_in_flight: "在途消息",
    row_latency_p50: "确认延迟 p50",
    row_latency_p99: "确认延迟 p99",
    row_hol_p99: "队头阻塞等待 p99",
    plot_rtt: "RTT 样本与 SRTT–RTO 区间",
    plot_rtt_sample: "RTT 样本",
    plot_srtt: "SRTT",
    plot_rto_band: "SRTT 至 RTO",
    plot_packets: "每秒数据包与重传",
    plot_packets_sent: "发送的数据包",
    plot_retransmissions: "重传",
    plot_cdf: "送达延迟累积分布（CDF）",
    axis_seconds: "时间（秒）",
    axis_ms: "毫秒",
    axis_per_second: "每秒",
    axis_fraction: "消息比例",
    impair_title: "给我的 UDP 流量加网络损伤",
    impair_explain: "只影响本程序的数据报；相同的种子可以重现同样的结果。",
    impair_loss: "丢包率（%）",
    impair_burst: "平均突发长度（包）",
    impair_delay: "延迟（毫秒）",
    impair_jitter: "抖动（毫秒）",
    impair_duplicate: "重复（%）",
    impair_reorder: "乱序（%）",
    impair_seed: "随机种子",
    impair_outgoing: "发出",
    impair_incoming: "收到",
    impair_apply: "应用",
    impair_reset: "重置",
    impair_applied: "网络损伤设置已应用。",
    impair_invalid: |reason| format!("这些设置无法使用：{reason}。"),
    export_title: "导出统计数据",
    export_path: "文件",
    export_csv: "保存为 CSV",
    export_json: "保存为 JSON",
    export_saved: |path| format!("已保存到 {path}。"),
    export_failed: |path, reason| format!("无法写入 {path}：{reason}。"),

    problem: problem_zh,
};

/// The short name of a transport, the same in both languages.
fn transport_name(transport: Transport) -> &'static str {
    match transport {
        Transport::Udp => "UDP",
        Transport::Tcp => "TCP",
    }
}

fn problem_en(problem: &Problem) -> String {
    match problem {
        Problem::Refused { code, message } => match code {
            ErrorCode::BadCredentials => String::from("Unknown user name or wrong password."),
            ErrorCode::UsernameTaken => String::from("This user name is already taken; choose another or log in."),
            ErrorCode::UsernameInvalid => format!("The server does not accept this user name: {message}"),
            ErrorCode::PasswordInvalid => format!("The server does not accept this password: {message}"),
            ErrorCode::LoginRateLimited => String::from("Too many failed attempts. Wait a minute before trying again."),
            ErrorCode::TooManyConnections => {
                String::from("Too many connections from this computer. Close another chatlab window first.")
            }
            ErrorCode::VersionMismatch => {
                String::from("This app and the server speak different protocol versions. Update the app.")
            }
            ErrorCode::TextTooLong => String::from("The message is longer than the server allows."),
            ErrorCode::TextInvalid => String::from("The server refused the text of this message."),
            ErrorCode::UnknownUser => String::from("There is no user with this name."),
            ErrorCode::FloodLimited => String::from("You are sending too fast. Wait a moment."),
            ErrorCode::TooManyRequests => {
                String::from("Too many requests to the server at once (history, user list). Wait a moment.")
            }
            ErrorCode::ServerShuttingDown => String::from("The server is shutting down."),
            _ => format!("The server refused: {message} (code {}).", code.as_u16()),
        },
        Problem::BadAddress { address } => {
            format!("\"{address}\" is not a server address. Write it as host:port, for example 192.168.1.20:7878.")
        }
        Problem::Unreachable { address, detail } => {
            format!("No chatlab server answers at {address} ({detail}). Check the address and that the server runs.")
        }
        Problem::TimedOut { address } => format!("The server at {address} did not answer in time."),
        Problem::Disconnected { detail } => format!("The connection to the server closed ({detail})."),
        Problem::OutboxFull { queued } => format!(
            "{queued} messages already wait for the connection to come back, the most kept; this one was not sent. \
             Send it again after the reconnect."
        ),
        Problem::OutboxExpired { waited_secs, maybe_stored: false } => {
            format!("The connection did not come back within {waited_secs} s; this message was not sent.")
        }
        Problem::OutboxExpired { waited_secs, maybe_stored: true } => format!(
            "The connection did not come back within {waited_secs} s. This message went out just before the \
             connection broke and was never acknowledged: the server may or may not have stored it."
        ),
        Problem::Other(sentence) => sentence.clone(),
    }
}

fn problem_zh(problem: &Problem) -> String {
    match problem {
        Problem::Refused { code, message } => match code {
            ErrorCode::BadCredentials => String::from("用户名不存在或密码错误。"),
            ErrorCode::UsernameTaken => String::from("该用户名已被注册，请换一个用户名或直接登录。"),
            ErrorCode::UsernameInvalid => format!("服务器不接受这个用户名：{message}"),
            ErrorCode::PasswordInvalid => format!("服务器不接受这个密码：{message}"),
            ErrorCode::LoginRateLimited => String::from("失败次数太多，请等一分钟再试。"),
            ErrorCode::TooManyConnections => String::from("这台电脑的连接太多，请先关闭其他 chatlab 窗口。"),
            ErrorCode::VersionMismatch => String::from("本程序与服务器的协议版本不同，请更新程序。"),
            ErrorCode::TextTooLong => String::from("消息超过了服务器允许的长度。"),
            ErrorCode::TextInvalid => String::from("服务器拒绝了这条消息的内容。"),
            ErrorCode::UnknownUser => String::from("没有这个用户。"),
            ErrorCode::FloodLimited => String::from("发送太快了，请稍等片刻。"),
            ErrorCode::TooManyRequests => String::from("向服务器发出的请求（历史记录、用户列表）太多，请稍等片刻。"),
            ErrorCode::ServerShuttingDown => String::from("服务器正在关闭。"),
            _ => format!("服务器拒绝了请求：{message}（代码 {}）。", code.as_u16()),
        },
        Problem::BadAddress { address } => {
            format!("“{address}”不是有效的服务器地址。请写成 主机:端口，例如 192.168.1.20:7878。")
        }
        Problem::Unreachable { address, detail } => {
            format!("{address} 没有 chatlab 服务器应答（{detail}）。请检查地址，并确认服务器正在运行。")
        }
        Problem::TimedOut { address } => format!("{address} 的服务器没有及时应答。"),
        Problem::Disconnected { detail } => format!("与服务器的连接已关闭（{detail}）。"),
        Problem::OutboxFull { queued } => {
            format!("已有 {queued} 条消息在等待连接恢复，已达上限；这条消息没有发送。请在重新连接后再发送。")
        }
        Problem::OutboxExpired { waited_secs, maybe_stored: false } => {
            format!("连接在 {waited_secs} 秒内没有恢复，这条消息没有发送。")
        }
        Problem::OutboxExpired { waited_secs, maybe_stored: true } => format!(
            "连接在 {waited_secs} 秒内没有恢复。这条消息在断线前已经发出，但一直没有收到确认：服务器可能已经保存，也可能没有。"
        ),
        Problem::Other(sentence) => sentence.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn chinese_locale_picks_chinese() {
        assert_eq!(Lang::from_locale(env(&[("LANG", "zh_CN.UTF-8")])), Lang::Zh);
        assert_eq!(Lang::from_locale(env(&[("LC_MESSAGES", "zh_SG")])), Lang::Zh);
        assert_eq!(Lang::from_locale(env(&[("LC_ALL", "ZH")])), Lang::Zh);
    }

    #[test]
    fn lc_all_overrides_lang_and_empty_values_are_skipped() {
        assert_eq!(Lang::from_locale(env(&[("LC_ALL", "en_US.UTF-8"), ("LANG", "zh_CN.UTF-8")])), Lang::En);
        assert_eq!(Lang::from_locale(env(&[("LC_ALL", ""), ("LANG", "zh_CN.UTF-8")])), Lang::Zh);
        assert_eq!(Lang::from_locale(env(&[("LC_MESSAGES", "C"), ("LANG", "zh_CN.UTF-8")])), Lang::En);
    }

    #[test]
    fn no_locale_means_english() {
        assert_eq!(Lang::from_locale(env(&[])), Lang::En);
    }

    #[test]
    fn language_codes_parse() {
        assert_eq!(Lang::parse("zh"), Some(Lang::Zh));
        assert_eq!(Lang::parse("EN"), Some(Lang::En));
        assert_eq!(Lang::parse("fr"), None);
    }

    #[test]
    fn known_error_codes_are_translated_and_unknown_ones_keep_the_server_text() {
        let bad = Problem::Refused { code: ErrorCode::BadCredentials, message: String::from("x") };
        assert_eq!((ZH.problem)(&bad), "用户名不存在或密码错误。");
        let busy = Problem::Refused { code: ErrorCode::TooManyRequests, message: String::from("x") };
        assert!((EN.problem)(&busy).starts_with("Too many requests"));
        assert!(!(ZH.problem)(&busy).contains("305"), "a sentence of its own, not the generic refusal");
        let unknown = Problem::Refused { code: ErrorCode::Unknown(999), message: String::from("disk on fire") };
        assert!((EN.problem)(&unknown).contains("disk on fire"));
        assert!((ZH.problem)(&unknown).contains("999"));
    }

    #[test]
    fn name_errors_become_sentences_in_both_languages() {
        let err = NameError::BadChar { ch: ' ', position: 3 };
        assert!((EN.name_error)(&err).contains("' '"));
        assert!((ZH.name_error)(&err).contains("' '"));
        assert_eq!((ZH.name_error)(&NameError::Empty), "请输入用户名。");
    }

    #[test]
    fn a_failed_transport_switch_names_the_transport_and_the_reason() {
        assert_eq!(
            (EN.transport_switch_failed)(Transport::Tcp, "not connected."),
            "Could not switch to TCP: not connected."
        );
        assert_eq!((ZH.transport_switch_failed)(Transport::Udp, "未连接。"), "无法切换到 UDP：未连接。");
        assert_eq!((EN.transport_switching)(Transport::Tcp), "Switching to TCP…");
    }

    #[test]
    fn a_full_outbox_is_explained_in_both_languages() {
        let full = Problem::OutboxFull { queued: 50 };
        assert!((EN.problem)(&full).starts_with("50 messages already wait for the connection"));
        assert!((ZH.problem)(&full).contains("50 条消息在等待连接恢复"));
    }

    #[test]
    fn a_message_given_up_after_the_longest_wait_is_explained_in_both_languages() {
        let unsent = Problem::OutboxExpired { waited_secs: 300, maybe_stored: false };
        assert!((EN.problem)(&unsent).contains("within 300 s; this message was not sent"));
        assert!((ZH.problem)(&unsent).contains("300 秒内没有恢复，这条消息没有发送"));
        let unsure = Problem::OutboxExpired { waited_secs: 300, maybe_stored: true };
        assert!((EN.problem)(&unsure).contains("may or may not have stored it"));
        assert!((ZH.problem)(&unsure).contains("可能已经保存"));
        assert!(!(ZH.problem)(&unsure).contains("没有发送"), "a message that went out may have been stored");
    }

    #[test]
    fn fallback_to_tcp_says_why() {
        let reason = TransportReason::UdpUnanswered { address: String::from("10.0.0.1:7878") };
        assert!((EN.transport_changed)(Transport::Tcp, &reason).contains("10.0.0.1:7878"));
        assert!((ZH.transport_changed)(Transport::Tcp, &reason).contains("TCP"));
    }
}
