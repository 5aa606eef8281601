# qemu: a VM disk image from a cloud image, provisioned over SSH.
# Needs the qemu plugin (packer plugins install github.com/hashicorp/qemu)
# and these variables beyond the common ones: iso_url, iso_checksum,
# ssh_username, ssh_private_key_file.

packer {
  required_plugins {
    imagebake = {
      source  = "github.com/imagebake/imagebake"
      version = ">= 0.1.0"
    }
    qemu = {
      source  = "github.com/hashicorp/qemu"
      version = ">= 1.0.9"
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
variable "iso_url" { type = string }
variable "iso_checksum" { type = string }
variable "ssh_username" {
  type    = string
  default = "debian"
}
variable "ssh_private_key_file" { type = string }

data "imagebake-release" "this" {
  manifest = var.manifest
}

locals {
  name = data.imagebake-release.this.image_names[var.arch]
}

source "qemu" "image" {
  iso_url              = var.iso_url
  iso_checksum         = var.iso_checksum
  disk_image           = true
  output_directory     = "${var.output_dir}/${local.name}.qemu"
  vm_name              = "${local.name}.qcow2"
  format               = "qcow2"
  headless             = true
  ssh_username         = var.ssh_username
  ssh_private_key_file = var.ssh_private_key_file
  shutdown_command     = "sudo shutdown -P now"
}

build {
  sources = ["source.qemu.image"]

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
