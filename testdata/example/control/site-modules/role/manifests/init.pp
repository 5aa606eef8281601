class role::base { include ntp
 include motd
 include profile }
