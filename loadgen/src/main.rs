fn main() {
    println!("zoocore-loadgen: not yet implemented");
}
