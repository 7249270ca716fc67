//! The `Fleet` contract suite against the local process fleet with a warm pool: two idle servers
//! started ahead, at most three, servers going back to the pool after their game. The suite's
//! placements then land on servers already listening, releases drain servers rather than stop them,
//! and a placement beyond the idle ones scales up or makes room by stopping a draining server.

use queuematch_contract::fleet::{FleetSubject, ServerCrash};
use queuematch_core::ports::fleet::PlacementId;
use queuematch_local::fleet::ServerLogs;
use queuematch_local::{ProcessFleet, ProcessFleetConfig};
use std::sync::Arc;
use std::time::Duration;

/// Crashes a server with SIGKILL, behind the fleet's back.
struct Kill(Arc<ProcessFleet>);

impl ServerCrash for Kill {
    async fn crash(&self, placement: &PlacementId) {
        let pid = self
            .0
            .pid(placement)
            .unwrap_or_else(|| panic!("{placement:?} has no running server"));
        let status = tokio::process::Command::new("kill")
            .arg("-KILL")
            .arg(pid.to_string())
            .status()
            .await
            .unwrap_or_else(|e| panic!("kill {pid}: {e}"));
        assert!(status.success(), "kill {pid}: {status}");
    }
}

async fn warm_fleet() -> FleetSubject<Arc<ProcessFleet>, Kill> {
    // Nobody listens at the service URL: no game is played here, and a server's failed reports
    // only delay its own `idle`.
    let mut config = ProcessFleetConfig::new(env!("CARGO_BIN_EXE_queuematch-gameserver"), "http://127.0.0.1:9");
    config.warm_servers = 2;
    config.max_servers = 3;
    config.logs = ServerLogs::Discard;
    let fleet = Arc::new(ProcessFleet::new(config));
    FleetSubject {
        port: fleet.clone(),
        capacity: 3,
        ready_within: Duration::from_secs(10),
        crash: Kill(fleet),
    }
}

mod warm_fleet {
    queuematch_contract::fleet_contract!(super::warm_fleet);
}
