# chroot: provision a pinned base root file system locally with the
# imagebake-chroot builder; any provisioner (shell, file) can be added.
# Needs root and a /bin/sh and tar in the base.

packer {
  required_plugins {
    imagebake = {
      source  = "github.com/imagebake/imagebake"
      version = ">= 0.1.0"
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
variable "output_dir" { type = string }
variable "source_date_epoch" {
  type    = string
  default = "0"
}
variable "rootfs" { type = string }
variable "rootfs_sha256" { type = string }

data "imagebake-release" "this" {
  manifest = var.manifest
}

locals {
  name = data.imagebake-release.this.image_names[var.arch]
}

source "imagebake-chroot" "image" {
  rootfs            = var.rootfs
  rootfs_sha256     = var.rootfs_sha256
  output            = "${var.output_dir}/${local.name}.packer.rootfs.tar.gz"
  source_date_epoch = var.source_date_epoch
}

build {
  sources = ["source.imagebake-chroot.image"]

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
