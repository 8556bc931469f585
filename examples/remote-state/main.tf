# A configuration whose state lives on kvm-state-server.
#
# Credentials come from the environment, never from this file:
#   export TF_HTTP_USERNAME=ci TF_HTTP_PASSWORD=...
# With a private CA (Terraform 1.0.3 has no CA option for the http backend):
#   export SSL_CERT_FILE=/path/to/ca.crt
terraform {
  backend "http" {
    address        = "https://localhost:8443/states/example/app"
    lock_address   = "https://localhost:8443/states/example/app"
    unlock_address = "https://localhost:8443/states/example/app"
    # LOCK and UNLOCK are the defaults; GitLab-style clients may use instead
    #   lock_address = ".../locks/example/app", lock_method = "POST", unlock_method = "DELETE"
  }
}

variable "greeting" {
  type    = string
  default = "hello"
}

resource "null_resource" "example" {
  triggers = {
    greeting = var.greeting
  }
}

output "greeting" {
  value = null_resource.example.triggers.greeting
}
