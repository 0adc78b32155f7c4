terraform {
  # Pure expressions only: no provider, so it can be evaluated (and tested) offline.
  required_version = ">= 1.6"
}
