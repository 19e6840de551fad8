# Container images of the server and the operator (filled in by the images issue).
group "default" {
  targets = []
}
