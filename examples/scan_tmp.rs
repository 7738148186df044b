fn main() {
    let p = std::env::args().nth(1).unwrap();
    let mode = std::env::args().nth(2).unwrap_or_default();
    let mut sum = 0u64;
    let s = kaprobe::capture::read_file(std::path::Path::new(&p), |r| {
        sum = sum.wrapping_add(r.time);
        if mode == "dec" {
            if let Some(l) = r.link {
                if let Ok(d) = kaprobe::decode::decode(l, r.data, false) {
                    sum = sum.wrapping_add(d.tcp.window as u64);
                }
            }
        }
    })
    .unwrap();
    println!("{} {}", s.records, sum);
}
