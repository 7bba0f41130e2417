use super::*;

/// A scratch directory removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!(
            "xray-spool-{name}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        Dir(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn config(dir: &Dir) -> SpoolConfig {
    SpoolConfig::new(&dir.0)
}

fn payload(i: u32) -> Vec<u8> {
    format!("item {i:05} {}", "x".repeat(40)).into_bytes()
}

fn read_all(spool: &Spool) -> (Vec<Vec<u8>>, u64) {
    let mut out = Vec::new();
    let mut damaged = 0;
    loop {
        let (batch, lost) = spool.read_batch(7, 1 << 20);
        damaged += lost.damaged;
        let Some(batch) = batch else { break };
        out.extend(batch.records.iter().map(|(p, _)| p.clone()));
        spool.ack(batch);
    }
    (out, damaged)
}

fn segments(dir: &Dir) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

#[test]
fn records_come_back_in_order_and_acknowledged_ones_are_gone_after_a_restart() {
    let dir = Dir::new("order");
    {
        let spool = Spool::open(&config(&dir)).unwrap();
        for i in 0..50 {
            assert!(spool.append(&payload(i), 2).unwrap().is_empty());
        }
        let (batch, _) = spool.read_batch(20, 1 << 20);
        let batch = batch.unwrap();
        assert_eq!(batch.records[0], (payload(0), 2));
        assert!(!batch.replay);
        spool.ack(batch);
        let s = spool.stats();
        assert_eq!((s.written, s.records), (50, 30));
        // Read but not acknowledged when the process dies: sent again.
        let (batch, _) = spool.read_batch(5, 1 << 20);
        assert_eq!(batch.unwrap().records[0].0, payload(20));
    }
    let spool = Spool::open(&config(&dir)).unwrap();
    assert_eq!(spool.unread(), 30);
    assert!(spool.stats().replaying);
    spool.append(&payload(50), 1).unwrap();
    let (got, damaged) = read_all(&spool);
    let want: Vec<Vec<u8>> = (20..51).map(payload).collect();
    assert_eq!((got, damaged), (want, 0));
    let s = spool.stats();
    assert_eq!((s.records, s.replayed, s.replaying), (0, 30, false));
}

#[test]
fn two_openers_never_share_a_directory() {
    let dir = Dir::new("lock");
    let first = Spool::open(&config(&dir)).unwrap();
    let err = Spool::open(&config(&dir)).unwrap_err();
    assert!(matches!(err, SpoolError::Locked(_)), "{err}");
    assert!(err.to_string().contains("in use"), "{err}");
    drop(first);
    Spool::open(&config(&dir)).unwrap();
}

#[test]
fn a_torn_tail_is_skipped_and_counted_and_the_rest_delivered() {
    let dir = Dir::new("torn");
    {
        let spool = Spool::open(&config(&dir)).unwrap();
        for i in 0..10 {
            spool.append(&payload(i), 1).unwrap();
        }
    }
    // A crash in the middle of the last write.
    let seg = segments(&dir).pop().unwrap();
    let len = fs::metadata(&seg).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    let spool = Spool::open(&config(&dir)).unwrap();
    assert_eq!(spool.unread(), 9);
    let (got, damaged) = read_all(&spool);
    assert_eq!(got, (0..9).map(payload).collect::<Vec<_>>());
    assert_eq!(damaged, 1);
    let s = spool.stats();
    assert_eq!((s.torn, s.corrupt), (1, 0));
}

#[test]
fn flipped_bytes_lose_only_the_damaged_record() {
    let dir = Dir::new("flip");
    {
        let spool = Spool::open(&config(&dir)).unwrap();
        for i in 0..10 {
            spool.append(&payload(i), 1).unwrap();
        }
    }
    let seg = segments(&dir).pop().unwrap();
    let mut bytes = fs::read(&seg).unwrap();
    let each = bytes.len() / 10;
    bytes[3 * each + record::HEADER + 2] ^= 0x20; // record 3's payload
    bytes[6 * each + 5] ^= 0xff; // record 6's length
    fs::write(&seg, &bytes).unwrap();
    let spool = Spool::open(&config(&dir)).unwrap();
    let (got, damaged) = read_all(&spool);
    let want: Vec<Vec<u8>> = [0, 1, 2, 4, 5, 7, 8, 9].into_iter().map(payload).collect();
    assert_eq!(got, want);
    assert_eq!(damaged, 2);
    assert_eq!(spool.stats().corrupt, 2);
}

#[test]
fn the_budget_drops_the_oldest_records_and_is_never_exceeded() {
    let dir = Dir::new("budget");
    let spool = Spool::open(&config(&dir).with_max_bytes(8192)).unwrap();
    let mut dropped = 0;
    for i in 0..1000 {
        dropped += spool.append(&payload(i), 1).unwrap().len();
        let on_disk: u64 = segments(&dir)
            .iter()
            .map(|p| fs::metadata(p).unwrap().len())
            .sum();
        assert!(on_disk <= 8192, "{on_disk} bytes after {i}");
        assert_eq!(spool.stats().bytes, on_disk);
    }
    let (got, _) = read_all(&spool);
    assert!(dropped > 800, "{dropped}");
    assert_eq!(got.len() + dropped, 1000);
    assert_eq!(got.last(), Some(&payload(999)), "the newest are kept");
    assert_eq!(spool.stats().dropped_full, dropped as u64);
    let big = vec![b'x'; 9000];
    assert!(matches!(spool.append(&big, 1), Err(AppendError::TooLarge)));
}

#[test]
fn a_rewound_batch_is_read_again_and_counts_as_replayed() {
    let dir = Dir::new("rewind");
    let spool = Spool::open(&config(&dir)).unwrap();
    for i in 0..5 {
        spool.append(&payload(i), 1).unwrap();
    }
    let (batch, _) = spool.read_batch(3, 1 << 20);
    assert!(
        spool.read_batch(3, 1 << 20).0.is_none(),
        "one batch in flight"
    );
    assert!(spool.rewind(batch.unwrap()));
    assert!(spool.stats().replaying);
    let (batch, _) = spool.read_batch(10, 1 << 20);
    let batch = batch.unwrap();
    assert!(batch.replay);
    assert_eq!(batch.records.len(), 5);
    spool.ack(batch);
    let s = spool.stats();
    assert_eq!((s.replayed, s.records, s.replaying), (5, 0, false));
}

#[test]
fn the_oldest_age_follows_the_oldest_pending_record() {
    let dir = Dir::new("age");
    let spool = Spool::open(&config(&dir)).unwrap();
    assert_eq!(spool.stats().oldest_age, Duration::ZERO);
    spool.append(&payload(0), 1).unwrap();
    std::thread::sleep(Duration::from_millis(120));
    spool.append(&payload(1), 1).unwrap();
    assert!(spool.stats().oldest_age >= Duration::from_millis(100));
    let (batch, _) = spool.read_batch(1, 1 << 20);
    spool.ack(batch.unwrap());
    assert!(spool.stats().oldest_age < Duration::from_millis(100));
}

#[test]
fn an_unwritable_directory_is_an_error_to_open() {
    let dir = Dir::new("ro");
    fs::create_dir_all(&dir.0).unwrap();
    let file = dir.0.join("not-a-dir");
    fs::write(&file, b"x").unwrap();
    let err = Spool::open(&SpoolConfig::new(file.join("spool"))).unwrap_err();
    assert!(matches!(err, SpoolError::Io(..)), "{err}");
}

#[test]
fn fsync_policies_parse() {
    assert_eq!("always".parse::<FsyncPolicy>(), Ok(FsyncPolicy::Always));
    assert_eq!("batch".parse::<FsyncPolicy>(), Ok(FsyncPolicy::Always));
    assert_eq!(
        "250ms".parse::<FsyncPolicy>(),
        Ok(FsyncPolicy::Every(Duration::from_millis(250)))
    );
    assert_eq!(
        "1000".parse::<FsyncPolicy>(),
        Ok(FsyncPolicy::Every(Duration::from_millis(1000)))
    );
    assert!("0".parse::<FsyncPolicy>().is_err());
    assert!("sometimes".parse::<FsyncPolicy>().is_err());
    assert_eq!(FsyncPolicy::default().to_string(), "1000ms");
}
