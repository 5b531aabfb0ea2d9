fn main() {
    eprintln!("chatlab-server: not built yet");
    std::process::exit(1);
}
