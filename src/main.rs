fn main() {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(|| async {
            println!("glommio ok");
        })
        .unwrap()
        .join()
        .unwrap();
}
