# One VPC, two public subnets, three security groups (server, GPU workers, Ray nodes).
#
# No NAT gateway (about $35 a month before traffic): every VM has a public address for its way
# out (packages, git, PyPI), and nothing comes in except what the rules below allow, from
# var.allowed_cidrs or from the project's own security groups. Egress is limited to HTTP(S) and
# the project's own ports. DNS, NTP and instance metadata are not filtered by security groups.

resource "aws_vpc" "main" {
  #checkov:skip=CKV2_AWS_11:VPC flow logs cost CloudWatch/S3 ingestion for a small team's VPC; turn them on when an audit needs them (README, cost notes)
  cidr_block           = "10.42.0.0/16"
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = { Name = var.name }
}

# The default security group of the VPC: no rules at all, so nothing can use it by accident.
resource "aws_default_security_group" "default" {
  vpc_id = aws_vpc.main.id
}

resource "aws_internet_gateway" "main" {
  vpc_id = aws_vpc.main.id
  tags   = { Name = var.name }
}

resource "aws_subnet" "public" {
  #checkov:skip=CKV_AWS_130:public addresses are the VMs' way out instead of a NAT gateway; `ray up` also requires subnets that map public IPs (README, network)
  count                   = 2
  vpc_id                  = aws_vpc.main.id
  cidr_block              = cidrsubnet(aws_vpc.main.cidr_block, 8, count.index)
  availability_zone       = data.aws_availability_zones.available.names[count.index]
  map_public_ip_on_launch = true

  tags = { Name = "${var.name}-public-${count.index}" }
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.main.id

  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.main.id
  }

  tags = { Name = "${var.name}-public" }
}

resource "aws_route_table_association" "public" {
  count          = length(aws_subnet.public)
  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

# S3 traffic (DVC, MLflow artifacts) stays on AWS's network and costs no data transfer.
resource "aws_vpc_endpoint" "s3" {
  vpc_id            = aws_vpc.main.id
  service_name      = "com.amazonaws.${var.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [aws_route_table.public.id]
}

# --- Security groups -------------------------------------------------------------------------

resource "aws_security_group" "server" {
  name        = "${var.name}-server"
  description = "MLflow and Prefect servers: reachable from allowed CIDRs and the project's workers"
  vpc_id      = aws_vpc.main.id
}

resource "aws_security_group" "gpu_worker" {
  name        = "${var.name}-gpu-worker"
  description = "Prefect GPU workers: no inbound traffic except SSH from allowed CIDRs"
  vpc_id      = aws_vpc.main.id
}

resource "aws_security_group" "ray" {
  name        = "${var.name}-ray"
  description = "Ray head and workers: all traffic within the group, Ray Client from Prefect GPU workers"
  vpc_id      = aws_vpc.main.id
}

locals {
  # People reach the servers' UIs and APIs from var.allowed_cidrs; machines from these groups.
  server_ports = { mlflow = local.mlflow_port, prefect = local.prefect_port }
  # Ray Client (`ray://head:10001`), which a Prefect flow with a RayTaskRunner connects to.
  ray_client_port = 10001

  server_ingress_from_people = {
    for pair in setproduct(keys(local.server_ports), var.allowed_cidrs) :
    "${pair[0]}-${pair[1]}" => { port = local.server_ports[pair[0]], cidr = pair[1] }
  }
  server_ingress_from_machines = {
    for pair in setproduct(keys(local.server_ports), ["gpu_worker", "ray"]) :
    "${pair[0]}-${pair[1]}" => { port = local.server_ports[pair[0]], group = pair[1] }
  }
  machine_groups = {
    gpu_worker = aws_security_group.gpu_worker.id
    ray        = aws_security_group.ray.id
  }
  all_groups = {
    server     = aws_security_group.server.id
    gpu_worker = aws_security_group.gpu_worker.id
    ray        = aws_security_group.ray.id
  }
  # SSH, only when a key pair is configured: one rule per group and allowed CIDR.
  ssh_ingress = var.ssh_key_name == null ? {} : {
    for pair in setproduct(keys(local.all_groups), var.allowed_cidrs) :
    "${pair[0]}-${pair[1]}" => { group = pair[0], cidr = pair[1] }
  }
  # Ways out: package mirrors, git, PyPI, S3 (HTTP for apt's mirrors, HTTPS for the rest).
  web_egress = {
    for pair in setproduct(keys(local.all_groups), [80, 443]) :
    "${pair[0]}-${pair[1]}" => { group = pair[0], port = pair[1] }
  }
}

resource "aws_vpc_security_group_ingress_rule" "server_from_allowed_cidrs" {
  for_each          = local.server_ingress_from_people
  security_group_id = aws_security_group.server.id
  description       = "${each.key}: from an allowed CIDR"
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
  cidr_ipv4         = each.value.cidr
}

resource "aws_vpc_security_group_ingress_rule" "server_from_machines" {
  for_each                     = local.server_ingress_from_machines
  security_group_id            = aws_security_group.server.id
  description                  = "${each.key}: from the project's machines"
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  referenced_security_group_id = local.machine_groups[each.value.group]
}

resource "aws_vpc_security_group_egress_rule" "machines_to_server" {
  for_each                     = local.server_ingress_from_machines
  security_group_id            = local.machine_groups[each.value.group]
  description                  = "${each.key}: to the MLflow and Prefect servers"
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  referenced_security_group_id = aws_security_group.server.id
}

resource "aws_vpc_security_group_ingress_rule" "ray_within_group" {
  security_group_id            = aws_security_group.ray.id
  description                  = "Ray nodes talk to each other on many ports (GCS, raylets, object manager, SSH from the head)"
  ip_protocol                  = "-1"
  referenced_security_group_id = aws_security_group.ray.id
}

resource "aws_vpc_security_group_egress_rule" "ray_within_group" {
  security_group_id            = aws_security_group.ray.id
  description                  = "Ray nodes talk to each other on many ports"
  ip_protocol                  = "-1"
  referenced_security_group_id = aws_security_group.ray.id
}

resource "aws_vpc_security_group_ingress_rule" "ray_client_from_gpu_workers" {
  security_group_id            = aws_security_group.ray.id
  description                  = "Ray Client from Prefect GPU workers (RayTaskRunner)"
  ip_protocol                  = "tcp"
  from_port                    = local.ray_client_port
  to_port                      = local.ray_client_port
  referenced_security_group_id = aws_security_group.gpu_worker.id
}

resource "aws_vpc_security_group_egress_rule" "gpu_workers_to_ray_client" {
  security_group_id            = aws_security_group.gpu_worker.id
  description                  = "Ray Client to the Ray head (RayTaskRunner)"
  ip_protocol                  = "tcp"
  from_port                    = local.ray_client_port
  to_port                      = local.ray_client_port
  referenced_security_group_id = aws_security_group.ray.id
}

resource "aws_vpc_security_group_ingress_rule" "ssh_from_allowed_cidrs" {
  for_each          = local.ssh_ingress
  security_group_id = local.all_groups[each.value.group]
  description       = "SSH from an allowed CIDR"
  ip_protocol       = "tcp"
  from_port         = 22
  to_port           = 22
  cidr_ipv4         = each.value.cidr
}

resource "aws_vpc_security_group_egress_rule" "web" {
  for_each          = local.web_egress
  security_group_id = local.all_groups[each.value.group]
  description       = "HTTP(S) out: apt, git, PyPI, S3"
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
  cidr_ipv4         = "0.0.0.0/0"
}
