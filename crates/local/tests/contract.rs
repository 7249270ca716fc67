//! The port contract suites of `queuematch-contract`, run against the local adapters on virtual time:
//! the store and the queue both in memory and on disk (`--data-dir`).

use queuematch_contract::events::{EventTap, EventsSubject};
use queuematch_contract::{Subject, Time};
use queuematch_core::ports::{Clock, Events, Store, TicketQueue};
use queuematch_core::{DomainEvent, Timestamp};
use queuematch_local::events::{Delivery, Subscription};
use queuematch_local::{
    DiskQueue, DiskStore, EventBus, ManualClock, MemoryQueue, MemoryStore, QueueConfig, SystemClock,
};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// Virtual time: advancing moves the adapter's clock, and nothing sleeps.
#[derive(Debug, Clone)]
struct Virtual(ManualClock);

impl Clock for Virtual {
    fn now(&self) -> Timestamp {
        self.0.now()
    }
}

impl Time for Virtual {
    async fn advance(&self, by: Duration) {
        self.0.advance(by);
        // Let whoever the new time wakes run before the suite goes on, as real time would.
        tokio::task::yield_now().await
    }
}

/// Real time, for the system clock's own contract.
#[derive(Debug)]
struct Real;

impl Clock for Real {
    fn now(&self) -> Timestamp {
        SystemClock.now()
    }
}

impl Time for Real {
    fn advance(&self, by: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(by)
    }
}

/// Virtual time for an adapter on disk, holding the adapter's scratch directory: it is removed when
/// the case ends, after the adapter is done with it.
#[derive(Debug)]
struct VirtualOnDisk {
    time: Virtual,
    _dir: tempfile::TempDir,
}

impl Clock for VirtualOnDisk {
    fn now(&self) -> Timestamp {
        self.time.now()
    }
}

impl Time for VirtualOnDisk {
    async fn advance(&self, by: Duration) {
        self.time.advance(by).await
    }
}

fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("a scratch directory: {e}"))
}

async fn fresh_disk_store() -> Subject<DiskStore, VirtualOnDisk> {
    let time = virtual_time();
    let dir = scratch();
    let port = DiskStore::open(time.0.clone(), &dir.path().join("store.redb"))
        .unwrap_or_else(|e| panic!("opening a disk store: {e}"));
    Subject {
        port,
        time: VirtualOnDisk { time, _dir: dir },
    }
}

async fn fresh_disk_queue() -> Subject<DiskQueue, VirtualOnDisk> {
    let time = virtual_time();
    let dir = scratch();
    let port = DiskQueue::open(time.0.clone(), QueueConfig::default(), &dir.path().join("queue.redb"))
        .unwrap_or_else(|e| panic!("opening a disk queue: {e}"));
    Subject {
        port,
        time: VirtualOnDisk { time, _dir: dir },
    }
}

fn virtual_time() -> Virtual {
    Virtual(ManualClock::default())
}

async fn fresh_store() -> Subject<MemoryStore, Virtual> {
    let time = virtual_time();
    Subject {
        port: MemoryStore::new(time.0.clone()),
        time,
    }
}

async fn fresh_queue() -> Subject<MemoryQueue, Virtual> {
    let time = virtual_time();
    Subject {
        port: MemoryQueue::new(time.0.clone(), QueueConfig::default()),
        time,
    }
}

/// The same adapters behind `Arc<dyn …>`, as the binaries wire them: the ports stay dyn-compatible.
async fn dyn_store() -> Subject<Arc<dyn Store>, Virtual> {
    let Subject { port, time } = fresh_store().await;
    Subject {
        port: Arc::new(port),
        time,
    }
}

async fn dyn_queue() -> Subject<Arc<dyn TicketQueue>, Virtual> {
    let Subject { port, time } = fresh_queue().await;
    Subject {
        port: Arc::new(port),
        time,
    }
}

async fn dyn_bus() -> EventsSubject<Arc<dyn Events>, BusTap> {
    let EventsSubject { port, tap } = fresh_bus().await;
    EventsSubject {
        port: Arc::new(port),
        tap,
    }
}

async fn manual_clock() -> Subject<ManualClock, Virtual> {
    let time = virtual_time();
    Subject {
        port: time.0.clone(),
        time,
    }
}

async fn system_clock() -> Subject<SystemClock, Real> {
    Subject {
        port: SystemClock,
        time: Real,
    }
}

/// The bus's deliveries, as the suite reads them.
struct BusTap(Mutex<Subscription>);

impl EventTap for BusTap {
    async fn next(&self, within: Duration) -> Option<DomainEvent> {
        let mut sub = self.0.lock().await;
        match tokio::time::timeout(within, sub.next()).await {
            Ok(Some(Delivery::Event(e))) => Some(e),
            Ok(Some(Delivery::Missed(n))) => panic!("the tap missed {n} events"),
            Ok(None) | Err(_) => None,
        }
    }
}

async fn fresh_bus() -> EventsSubject<EventBus, BusTap> {
    let bus = EventBus::default();
    let tap = BusTap(Mutex::new(bus.subscribe()));
    EventsSubject { port: bus, tap }
}

mod store {
    queuematch_contract::store_contract!(super::fresh_store);
}

mod queue {
    queuematch_contract::queue_contract!(super::fresh_queue);
}

mod disk_store {
    queuematch_contract::store_contract!(super::fresh_disk_store);
}

mod disk_queue {
    queuematch_contract::queue_contract!(super::fresh_disk_queue);
}

mod manual_clock {
    queuematch_contract::clock_contract!(super::manual_clock);
}

mod system_clock {
    queuematch_contract::clock_contract!(super::system_clock);
}

mod events {
    queuematch_contract::events_contract!(super::fresh_bus);
}

mod dyn_store {
    queuematch_contract::store_contract!(super::dyn_store);
}

mod dyn_queue {
    queuematch_contract::queue_contract!(super::dyn_queue);
}

mod dyn_events {
    queuematch_contract::events_contract!(super::dyn_bus);
}
