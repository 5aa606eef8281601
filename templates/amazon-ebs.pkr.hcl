# amazon-ebs: an AMI per arch, provisioned over SSH.
# Needs the amazon plugin (packer plugins install github.com/hashicorp/amazon)
# and these variables beyond the common ones: region, source_ami,
# instance_type, ssh_username.

packer {
  required_plugins {
    imagebake = {
      source  = "github.com/imagebake/imagebake"
      version = ">= 0.1.0"
    }
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = ">= 1.2.1"
    }
  }
}

variable "manifest" { type = string }
variable "arch" { type = string }
variable "context" {
  type    = string
  default = "."
}
variable "cache" {
  type    = string
  default = ""
}
variable "region" { type = string }
variable "source_ami" { type = string }
variable "instance_type" { type = string }
variable "ssh_username" {
  type    = string
  default = "admin"
}

data "imagebake-release" "this" {
  manifest = var.manifest
}

locals {
  name = data.imagebake-release.this.image_names[var.arch]
}

source "amazon-ebs" "image" {
  region        = var.region
  source_ami    = var.source_ami
  instance_type = var.instance_type
  ssh_username  = var.ssh_username
  ami_name      = local.name
  tags = {
    "org.opencontainers.image.version"  = data.imagebake-release.this.release
    "org.opencontainers.image.revision" = data.imagebake-release.this.commit
  }
}

build {
  sources = ["source.amazon-ebs.image"]

  provisioner "imagebake" {
    manifest = var.manifest
    arch     = var.arch
    context  = var.context
    cache    = var.cache
  }

  post-processor "imagebake-manifest" {
    manifest = var.manifest
  }
}
