//! The `Fleet` contract suite, run against the local process fleet with real `queuematch-gameserver`
//! processes. It lives here rather than in `queuematch-local` because only this package's tests are
//! sure to find the binary built (`CARGO_BIN_EXE_queuematch-gameserver`).

mod common;

use common::ReportReceiver;
use queuematch_contract::fleet::{FleetSubject, ServerCrash};
use queuematch_core::ports::fleet::PlacementId;
use queuematch_local::ProcessFleet;
use std::sync::Arc;
use std::time::Duration;

/// Crashes a server with SIGKILL, behind the fleet's back; keeps the report receiver alive as long
/// as the fleet's servers may report.
struct Kill {
    fleet: Arc<ProcessFleet>,
    _receiver: ReportReceiver,
}

impl ServerCrash for Kill {
    async fn crash(&self, placement: &PlacementId) {
        let pid = self
            .fleet
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

async fn process_fleet() -> FleetSubject<Arc<ProcessFleet>, Kill> {
    let receiver = ReportReceiver::start().await;
    let fleet = Arc::new(common::fleet(&receiver.url, 3, &[]));
    FleetSubject {
        port: fleet.clone(),
        capacity: 3,
        ready_within: Duration::from_secs(10),
        crash: Kill {
            fleet,
            _receiver: receiver,
        },
    }
}

mod process_fleet {
    queuematch_contract::fleet_contract!(super::process_fleet);
}
