// C++ methods, in and out of their classes.
#include <string>
#include <vector>

namespace net {

class Buffer {
 public:
  explicit Buffer(std::size_t n) : data_(n), used_(0) {}
  ~Buffer();
  std::size_t size() const { return used_; }
  bool append(const char *p, std::size_t n);
  Buffer &operator+=(const Buffer &other);

 private:
  std::vector<char> data_;
  std::size_t used_;
};

Buffer::~Buffer() {}

bool Buffer::append(const char *p, std::size_t n)
{
#ifdef NET_CHECKED
  if (used_ + n > data_.size() || p == nullptr) {
#else
  if (used_ + n > data_.size()) {
#endif
    return false;
  }
  for (std::size_t i = 0; i < n; i++)
    data_[used_ + i] = p[i];
  used_ += n;
  return true;
}

Buffer &Buffer::operator+=(const Buffer &other)
{
  append(other.data_.data(), other.used_);
  return *this;
}

template <typename T>
T clamp(T v, T lo, T hi)
{
  return v < lo ? lo : (v > hi ? hi : v);
}

}  // namespace net

int buffer_size(const net::Buffer &b) { return static_cast<int>(b.size()); }
