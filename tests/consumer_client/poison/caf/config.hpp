// First on the client consumer's include path: any CAF header pulled in by
// snakepit::client's public headers includes this one and fails the build.
#error "a public header of snakepit::client includes CAF"
