use dynapviz_chip::{Config, Mode, Monitors, Simulator};
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let dims: Vec<usize> = a[2].split(',').map(|s| s.parse().unwrap()).collect();
    let layer: usize = a[4].parse().unwrap();
    let net = dynapviz_model::Pipeline::new(std::path::Path::new(&a[1]))
        .input_shape([dims[0], dims[1], dims[2]])
        .device("speck2e")
        .build()
        .unwrap();
    let mut r = dynapviz_events::open(std::path::Path::new(&a[3])).unwrap();
    let ev = dynapviz_events::read_all(r.as_mut()).unwrap();
    let config = Config { mode: Mode::Binned { bin_us: 1000 }, monitors: Monitors::of([layer]), ..Config::default() };
    let mut sim = Simulator::new(&net, config).unwrap();
    let mut out = Vec::new();
    sim.process(&ev, &mut out);
    sim.finish(&mut out);
    let mut bins = vec![0u64; 60];
    for s in &out {
        if s.layer as usize == layer {
            bins[(s.t / 1000) as usize] += 1;
        }
    }
    println!("{:?}", bins);
}
