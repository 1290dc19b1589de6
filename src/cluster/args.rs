//! The flags a cluster mode adds to the server's: where the log is.

use clap::Args;

use super::bridge::StreamSettings;
use crate::units::parse_bytes;

/// Where the shared log lives and how much of it is kept.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// The NATS server holding the log (JetStream must be on: `nats-server
    /// -js`), or the nodes of a cluster separated by commas.
    #[arg(
        long,
        env = "FOLLOWER_MAZE_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub nats_url: String,

    /// The JetStream stream holding the log; created if missing with file
    /// storage, --stream-replicas copies, subject `<stream>.log`, no age limit, the
    /// oldest records dropped past --stream-max-bytes, and a two-minute
    /// window in which a retried append is stored once.
    #[arg(long, env = "FOLLOWER_MAZE_STREAM", default_value = "follower-maze")]
    pub stream: String,

    /// Bytes the stream keeps when it creates it; past them the oldest
    /// records are dropped. An edge that starts rebuilds the follow graph
    /// from the start of the current run, so keep a whole run (the default
    /// run of 10 M events is about 200 MB).
    #[arg(long, env = "FOLLOWER_MAZE_STREAM_MAX_BYTES", value_name = "SIZE", default_value = "8GiB", value_parser = parse_bytes::<i64>)]
    pub stream_max_bytes: i64,

    /// Copies of the stream JetStream keeps when it creates it, each on
    /// another node of a NATS cluster (1 to 5; 3 survives the loss of a
    /// node). More replicas than the cluster has nodes is refused by
    /// JetStream when the stream is created.
    #[arg(long, env = "FOLLOWER_MAZE_STREAM_REPLICAS", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub stream_replicas: u8,
}

impl ClusterArgs {
    /// The bridge's view of these flags.
    pub fn stream_settings(&self) -> StreamSettings {
        StreamSettings {
            max_bytes: self.stream_max_bytes,
            replicas: usize::from(self.stream_replicas),
            ..StreamSettings::new(self.nats_url.clone(), self.stream.clone())
        }
    }
}
